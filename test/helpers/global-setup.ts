import type { TestProject } from 'vitest/node';
import { provideServers, type ServerHandle } from '../../tools/pg-servers.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Admin connection strings of the shared test servers (at least two). */
    servers: string[];
  }
}

let handles: ServerHandle[] = [];

export async function setup(project: TestProject): Promise<void> {
  handles = await provideServers(2);
  project.provide('servers', handles.map((h) => h.url));
}

export async function teardown(): Promise<void> {
  await Promise.all(handles.map((h) => h.stop()));
}
