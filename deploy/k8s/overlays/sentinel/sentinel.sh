#!/bin/sh
# Starts one sentinel. Sentinel rewrites its config file, so it is written into /tmp (an
# emptyDir) at each start, naming the primary the other sentinels know (redis-0 at first).
set -eu
self="$(hostname).redis-sentinel"
primary=""
for n in 0 1 2; do
  [ "redis-sentinel-$n.redis-sentinel" = "$self" ] && continue
  primary=$(redis-cli -h "redis-sentinel-$n.redis-sentinel" -p 26379 --raw \
    SENTINEL get-master-addr-by-name usm 2>/dev/null | head -n 1) || true
  [ -n "$primary" ] && break
done
[ -n "$primary" ] || primary="redis-0.redis"
cat > /tmp/sentinel.conf <<CONF
port 26379
sentinel resolve-hostnames yes
sentinel announce-hostnames yes
sentinel announce-ip $self
sentinel monitor usm $primary 6379 2
sentinel down-after-milliseconds usm 5000
sentinel failover-timeout usm 30000
sentinel parallel-syncs usm 1
CONF
exec redis-sentinel /tmp/sentinel.conf
