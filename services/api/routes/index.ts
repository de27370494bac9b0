import type { Runtime } from '../../../lib/runtime/service-kit.ts';
import type { ApiRouteModule } from './module.ts';
import { analysisRoutes } from './analyses.ts';
import { documentRoutes } from './documents.ts';
import { jobFeed } from './job-feed.ts';
import { jobRoutes } from './jobs.ts';
import { uploadRoutes } from './uploads.ts';
import { chatRoutes } from './chats.ts';
import { openAiRoutes } from './openai.ts';
import { modelRoutes } from './models.ts';
import { searchRoutes } from './search.ts';
import { systemRoutes } from './system.ts';
import { adminRoutes } from './admin.ts';
import { webRoutes } from './web.ts';

/**
 * Every slice of the gateway, made for one api service; add a module here to expose
 * its endpoints. Documents, uploads and jobs share one job feed (the jobs context and
 * the SSE fan-out of job updates), so it is made here once.
 */
export function apiRouteModules(runtime: Runtime): ApiRouteModule[] {
  const feed = jobFeed(runtime);
  return [
    systemRoutes(runtime),
    documentRoutes(runtime, feed),
    uploadRoutes(runtime, feed),
    jobRoutes(runtime, feed),
    searchRoutes(runtime),
    chatRoutes(runtime),
    openAiRoutes(runtime),
    adminRoutes(runtime),
    analysisRoutes(runtime, feed),
    modelRoutes(runtime),
    webRoutes(),
  ];
}
