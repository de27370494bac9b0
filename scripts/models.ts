import path from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig } from '../lib/config/env.ts';
import { createLogger } from '../lib/logging.ts';
import {
  buildManifest,
  MODEL_KINDS,
  readManifest,
  verifyFolder,
  writeManifest,
  type EmbedSpec,
  type ModelKind,
  type ModelManifest,
} from '../lib/models/manifest.ts';
import { publishFolder } from '../lib/models/publish.ts';
import { ModelsRepository } from '../lib/repositories/models.ts';
import { Stores } from '../lib/runtime/stores.ts';

const USAGE = `Usage: npm run models -- <command> <folder> [options]

  build <folder> --alias A --version V --kind embed|ocr|llm|rerank [--name N] [--license L]
        embed (onnx):  --dimension D [--pooling mean|cls] [--no-normalize] [--max-tokens 512]
                       [--query-prefix "query: "] [--passage-prefix "passage: "] [--precision fp32|int8]
                       [--model model.onnx] [--tokenizer tokenizer.json] [--tokenizer-config tokenizer_config.json]
        embed (starter): --engine hashed-ngrams --dimension D [--config config.json]
        ocr:           --languages eng+rus   (needs <lang>.traineddata files)
      Hashes every file in <folder> and writes <folder>/manifest.json.
  verify <folder>     Checks every file against <folder>/manifest.json (exit 1 on a mismatch).
  publish <folder>    Verifies, uploads files + manifest to the models bucket (S3 or, embedded,
                      DATA_DIR/objects/models) and registers the version in the database.
                      It does not switch the alias: use the maintenance action models.switch.`;

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      alias: { type: 'string' },
      version: { type: 'string' },
      kind: { type: 'string' },
      name: { type: 'string' },
      license: { type: 'string' },
      engine: { type: 'string', default: 'onnx' },
      dimension: { type: 'string' },
      pooling: { type: 'string', default: 'mean' },
      'no-normalize': { type: 'boolean', default: false },
      'max-tokens': { type: 'string', default: '512' },
      'query-prefix': { type: 'string', default: '' },
      'passage-prefix': { type: 'string', default: '' },
      precision: { type: 'string', default: 'fp32' },
      model: { type: 'string', default: 'model.onnx' },
      tokenizer: { type: 'string', default: 'tokenizer.json' },
      'tokenizer-config': { type: 'string' },
      config: { type: 'string', default: 'config.json' },
      languages: { type: 'string', default: 'eng+rus' },
      'created-at': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const [command, folderArg] = positionals;
  if (values.help || !command || !folderArg) {
    console.log(USAGE);
    return values.help ? 0 : 2;
  }
  const folder = path.resolve(folderArg);

  if (command === 'build') {
    const kind = values.kind as ModelKind;
    if (!values.alias || !values.version || !MODEL_KINDS.includes(kind)) throw new Error('build needs --alias, --version and --kind');
    let embed: EmbedSpec | undefined;
    if (kind === 'embed') {
      const common = {
        dimension: Number(values.dimension),
        maxTokens: Number(values['max-tokens']),
        queryPrefix: values['query-prefix']!,
        passagePrefix: values['passage-prefix']!,
      };
      embed =
        values.engine === 'hashed-ngrams'
          ? { engine: 'hashed-ngrams', normalize: true, config: values.config!, ...common }
          : {
              engine: 'onnx',
              pooling: values.pooling as 'mean' | 'cls',
              normalize: !values['no-normalize'],
              precision: values.precision as 'fp32' | 'int8',
              model: values.model!,
              tokenizer: values.tokenizer!,
              ...(values['tokenizer-config'] ? { tokenizerConfig: values['tokenizer-config'] } : {}),
              ...common,
            };
    }
    const manifest = await buildManifest(folder, {
      name: values.name ?? values.alias,
      alias: values.alias,
      version: values.version,
      kind,
      ...(values.license ? { license: values.license } : {}),
      ...(values['created-at'] ? { createdAt: values['created-at'] } : {}),
      ...(embed ? { embed } : {}),
      ...(kind === 'ocr' ? { ocr: { engine: 'tesseract' as const, languages: values.languages!.split('+') } } : {}),
    });
    await writeManifest(folder, manifest);
    console.log(`wrote ${path.join(folder, 'manifest.json')}: ${describe(manifest)}`);
    return 0;
  }

  if (command === 'verify') {
    const manifest = await readManifest(folder);
    const problems = await verifyFolder(folder, manifest);
    for (const p of problems) {
      console.error(`MISMATCH ${p.path}: ${p.reason}; manifest sha256 ${p.expected.sha256} (${p.expected.size} bytes), file ${p.actual ? `${p.actual.sha256} (${p.actual.size} bytes)` : 'missing'}`);
    }
    if (problems.length === 0) console.log(`ok ${describe(manifest)}`);
    return problems.length === 0 ? 0 : 1;
  }

  if (command === 'publish') {
    const config = loadConfig();
    const logger = createLogger(config.logLevel, { script: 'models' });
    const stores = new Stores(config, logger);
    try {
      const manifest = await publishFolder(await stores.models(), folder);
      await new ModelsRepository((await stores.db()).knex).register(manifest);
      console.log(`published and registered ${describe(manifest)} to bucket ${config.objects.modelsBucket}`);
    } finally {
      await stores.close();
    }
    return 0;
  }

  console.error(USAGE);
  return 2;
}

function describe(m: ModelManifest): string {
  const bytes = m.files.reduce((sum, f) => sum + f.size, 0);
  return `${m.alias}@${m.version} (${m.kind}, ${m.files.length} files, ${(bytes / 1e6).toFixed(1)} MB)`;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error((err as Error).message);
    process.exit(1);
  },
);
