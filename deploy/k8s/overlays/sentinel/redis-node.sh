#!/bin/sh
# Starts one Redis data node. It becomes a replica of whatever the sentinels call the primary;
# on a fresh deployment (no sentinel answers yet) redis-0 starts as the primary. So a node that
# restarts after a failover never comes back as a second, stale primary.
set -eu
self="$(hostname).redis"
primary=""
for n in 0 1 2; do
  primary=$(redis-cli -h "redis-sentinel-$n.redis-sentinel" -p 26379 --raw \
    SENTINEL get-master-addr-by-name usm 2>/dev/null | head -n 1) || true
  [ -n "$primary" ] && break
done
[ -n "$primary" ] || primary="redis-0.redis"
set -- --appendonly yes --appendfsync everysec --hash-max-listpack-value 1024 --dir /data \
  --replica-announce-ip "$self" --min-replicas-to-write 1 --min-replicas-max-lag 10
if [ "$primary" != "$self" ]; then
  set -- "$@" --replicaof "$primary" 6379
fi
exec redis-server "$@"
