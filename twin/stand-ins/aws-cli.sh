#!/bin/sh
# Stand-in for the AWS CLI image's /usr/local/bin/aws: Debian's AWS CLI v2 (/usr/bin/aws). Debian ships 2.9, which
# predates the AWS_ENDPOINT_URL_<SERVICE> variables (AWS CLI 2.13); the image's CLI reads them itself, so this passes
# the service's variable on as --endpoint-url. Nothing else changes: same command, same arguments.
service=$(printf '%s' "${1:-}" | tr 'a-z-' 'A-Z_' | tr -cd 'A-Z0-9_')
case "$service" in S3API) service=S3 ;; esac
url=""
if [ -n "$service" ]; then eval "url=\${AWS_ENDPOINT_URL_${service}:-}"; fi
[ -n "$url" ] || url="${AWS_ENDPOINT_URL:-}"
if [ -n "$url" ]; then exec /usr/bin/aws "$@" --endpoint-url "$url"; fi
exec /usr/bin/aws "$@"
