import type { ApiRouteFactory } from './module.ts';
import { analysisRoutes } from './analyses.ts';
import { documentRoutes } from './documents.ts';
import { chatRoutes } from './chats.ts';
import { openAiRoutes } from './openai.ts';
import { modelRoutes } from './models.ts';
import { searchRoutes } from './search.ts';
import { systemRoutes } from './system.ts';
import { adminRoutes } from './admin.ts';
import { webRoutes } from './web.ts';

/** Every slice of the gateway; add a module here to expose its endpoints. */
export const API_ROUTE_MODULES: ApiRouteFactory[] = [systemRoutes, documentRoutes, searchRoutes, chatRoutes, openAiRoutes, adminRoutes, analysisRoutes, modelRoutes, webRoutes];
