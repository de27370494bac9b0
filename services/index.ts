import type { ServiceName } from '../lib/config/env.ts';
import type { ServiceFactory } from '../lib/runtime/service-kit.ts';
import apiService from './api/api.service.ts';
import embService from './emb/emb.service.ts';
import llmService from './llm/llm.service.ts';
import ingestService from './ingest/ingest.service.ts';
import analyzeService from './analyze/analyze.service.ts';
import maintenanceService from './maintenance/maintenance.service.ts';

/** The six services; SERVICES picks which of them a process runs. */
export const SERVICE_FACTORIES: Record<ServiceName, ServiceFactory> = {
  api: apiService,
  emb: embService,
  llm: llmService,
  ingest: ingestService,
  analyze: analyzeService,
  maintenance: maintenanceService,
};

