import type { Runtime } from '../../../lib/runtime/service-kit.ts';
import { Answerer } from '../answering.ts';
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
 * the SSE fan-out of job updates), chat and /v1 one Answerer: each is made here once.
 */
export function apiRouteModules(runtime: Runtime): ApiRouteModule[] {
  const feed = jobFeed(runtime);
  // Chat and the OpenAI-compatible API answer through one RAG orchestration (and its llm version cache).
  const answerer = new Answerer();
  return [
    systemRoutes(runtime),
    documentRoutes(runtime, feed),
    uploadRoutes(runtime, feed),
    jobRoutes(runtime, feed),
    searchRoutes(runtime),
    chatRoutes(runtime, answerer),
    openAiRoutes(runtime, answerer),
    adminRoutes(runtime),
    analysisRoutes(runtime, feed),
    modelRoutes(runtime),
    webRoutes(),
  ];
}
