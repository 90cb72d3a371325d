#!/usr/bin/env bash
# A stand-in for apache/kafka's kafka-broker-api-versions.sh, for health checks: it sends one ApiVersions
# request (v0) over bash's /dev/tcp and exits 0 only if the broker answers it without error. Ready means the
# broker answers an API request, not merely that its port is open; and no JVM starts for it (seconds of CPU
# every interval otherwise).
#   kafka-broker-api-versions.sh --bootstrap-server HOST:PORT
set -euo pipefail
server=localhost:9092
while [ $# -gt 0 ]; do
  case $1 in
    --bootstrap-server) server=$2; shift 2 ;;
    *) shift ;;
  esac
done
host=${server%:*} port=${server##*:}
exec 3<>"/dev/tcp/$host/$port"
# size 12 | api_key 18 (ApiVersions) | api_version 0 | correlation_id 1 | client_id "hc"
printf '\x00\x00\x00\x0c\x00\x12\x00\x00\x00\x00\x00\x01\x00\x02hc' >&3
# The answer: size (4) | correlation_id (4) = 1 | error_code (2) = 0
answer=$(timeout 5 head -c 10 <&3 | od -An -tx1 | tr -d ' \n')
exec 3<&-
[ "${answer:8:12}" = "000000010000" ] || { echo "no ApiVersions answer from $server" >&2; exit 1; }
echo "$server answers ApiVersions"
