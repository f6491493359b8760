# Sourced by scripts/walkthrough.sh and bench/oci-push.sh: starts CNCF
# Distribution (from $toolbin) on a free loopback port with its data in
# $work, and sets $port and $registry_pid. The caller stops it. With
# registry_accesslog=1 set, it logs every request to $work/registry.log.
port=
for p in $(shuf -i 20000-40000 -n 50); do
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then port=$p; break; fi
done
[ -n "$port" ] || { echo "no free port found" >&2; exit 1; }
cat > "$work/registry.yml" <<YAML
version: 0.1
log: {level: error, accesslog: {disabled: $([ "${registry_accesslog:-}" = 1 ] && echo false || echo true)}}
storage:
  filesystem: {rootdirectory: $work/registry-data}
  delete: {enabled: true}
http: {addr: 127.0.0.1:$port}
YAML
"$toolbin/registry" serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
registry_pid=$!
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done
