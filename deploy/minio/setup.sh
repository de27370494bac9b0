#!/bin/sh
# Least privilege in object storage: creates ragmesh's buckets and a MinIO user whose
# policy (ragmesh-policy.json) reaches those buckets only — no admin API, no other
# bucket, no bucket creation or deletion, no policy changes. Services use this user
# (S3_ACCESS_KEY_FILE / S3_SECRET_KEY_FILE), never the root credentials, which only
# this script uses, once.
#
#   MINIO_URL=http://minio:9000 MINIO_ROOT_USER=... MINIO_ROOT_PASSWORD=... \
#   RAGMESH_S3_ACCESS_KEY=... RAGMESH_S3_SECRET_KEY=... deploy/minio/setup.sh
#
# Bucket names follow S3_BUCKET, S3_MODELS_BUCKET and BACKUP_BUCKET (defaults ragmesh,
# models, ragmesh-backups); the policy file names the defaults and is rewritten for
# others. Idempotent: run it again after changing the policy.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
: "${MINIO_URL:?MINIO_URL, e.g. http://minio:9000}"
: "${MINIO_ROOT_USER:?}" "${MINIO_ROOT_PASSWORD:?}"
: "${RAGMESH_S3_ACCESS_KEY:?the access key the services will use}" "${RAGMESH_S3_SECRET_KEY:?its secret (at least 8 characters)}"
bucket=${S3_BUCKET:-ragmesh}
models=${S3_MODELS_BUCKET:-models}
backups=${BACKUP_BUCKET:-ragmesh-backups}

policy=$(mktemp)
trap 'rm -f "$policy"' EXIT
sed -e "s#arn:aws:s3:::ragmesh-backups#arn:aws:s3:::$backups#g" \
    -e "s#arn:aws:s3:::models#arn:aws:s3:::$models#g" \
    -e "s#arn:aws:s3:::ragmesh\\([\"/]\\)#arn:aws:s3:::$bucket\\1#g" \
    "$here/ragmesh-policy.json" > "$policy"

mc alias set ragmesh-root "$MINIO_URL" "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD" >/dev/null
for b in "$bucket" "$models" "$backups"; do mc mb --ignore-existing "ragmesh-root/$b"; done
# Nothing in ragmesh's buckets is public: presigned URLs are the only way in from outside.
for b in "$bucket" "$models" "$backups"; do mc anonymous set none "ragmesh-root/$b"; done
mc admin policy create ragmesh-root ragmesh-services "$policy"
mc admin user add ragmesh-root "$RAGMESH_S3_ACCESS_KEY" "$RAGMESH_S3_SECRET_KEY"
mc admin policy attach ragmesh-root ragmesh-services --user "$RAGMESH_S3_ACCESS_KEY" 2>/dev/null || true
mc alias remove ragmesh-root >/dev/null
echo "MinIO user $RAGMESH_S3_ACCESS_KEY may reach $bucket, $models and $backups only."
