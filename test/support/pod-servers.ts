/**
 * Small servers for the test image (busybox: httpd, nc, sh), written into a pod at start: an HTTP
 * echo CGI, a server-sent events CGI and a WebSocket echo server in sh. Used by the proxy tests.
 */

/** CGI: echoes the method, the forwarded headers and the body's size and sum. */
const ECHO_CGI = `#!/bin/sh
printf 'Content-Type: text/plain\\r\\n\\r\\n'
echo "method=$REQUEST_METHOD"
echo "uri=$REQUEST_URI"
echo "xff=$HTTP_X_FORWARDED_FOR"
echo "xfproto=$HTTP_X_FORWARDED_PROTO"
echo "xfhost=$HTTP_X_FORWARDED_HOST"
echo "authorization=$HTTP_AUTHORIZATION"
echo "cookie=$HTTP_COOKIE"
if [ -n "$CONTENT_LENGTH" ]; then
  head -c "$CONTENT_LENGTH" | md5sum | cut -d' ' -f1 | sed 's/^/md5=/'
fi
`;

/** CGI: one event every 2 s for $QUERY_STRING seconds (default 5), then "done". */
const SSE_CGI = `#!/bin/sh
printf 'Content-Type: text/event-stream\\r\\nCache-Control: no-cache\\r\\n\\r\\n'
n=\${QUERY_STRING:-5}
i=0
while [ $i -lt $n ]; do
  printf 'data: tick %s\\n\\n' "$i"
  i=$((i + 2))
  sleep 2
done
printf 'event: done\\ndata: bye\\n\\n'
`;

/** CGI: $QUERY_STRING bytes of zeros, for a long download. */
const BIG_CGI = `#!/bin/sh
printf 'Content-Type: application/octet-stream\\r\\nContent-Length: %s\\r\\n\\r\\n' "$QUERY_STRING"
head -c "$QUERY_STRING" /dev/zero
`;

/** A WebSocket echo (RFC 6455, text frames under 126 bytes, close) for nc -ll -e. */
const WS_ECHO = `#!/bin/sh
key=""
while IFS= read -r line; do
  line=$(printf '%s' "$line" | tr -d '\\r')
  [ -z "$line" ] && break
  case "$line" in [Ss]ec-[Ww]eb[Ss]ocket-[Kk]ey:*) key=$(printf '%s' "\${line#*:}" | tr -d ' ') ;; esac
done
accept=$(printf '%s' "\${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11" | sha1sum | cut -d' ' -f1 | xxd -r -p | base64)
printf 'HTTP/1.1 101 Switching Protocols\\r\\nUpgrade: websocket\\r\\nConnection: Upgrade\\r\\nSec-WebSocket-Accept: %s\\r\\n\\r\\n' "$accept"
while :; do
  set -- $(dd bs=1 count=2 2>/dev/null | od -An -tu1)
  [ $# -lt 2 ] && exit 0
  op=$(($1 & 15)); len=$(($2 & 127))
  set -- $(dd bs=1 count=4 2>/dev/null | od -An -tu1)
  m0=$1; m1=$2; m2=$3; m3=$4
  out=""
  i=0
  for b in $(dd bs=1 count=$len 2>/dev/null | od -An -tu1); do
    case $((i % 4)) in 0) k=$m0 ;; 1) k=$m1 ;; 2) k=$m2 ;; 3) k=$m3 ;; esac
    out="$out\\\\$(printf '%03o' $((b ^ k)))"
    i=$((i + 1))
  done
  if [ $op -eq 8 ]; then printf '\\210\\000'; exit 0; fi
  printf "\\\\$(printf '%03o' $((128 | op)))\\\\$(printf '%03o' $len)$out"
done
`;

/** The container command: writes the scripts, then serves HTTP on 8080 and 8081 and WebSockets on 9000. */
export function podServersCommand(): string[] {
  const files: [string, string][] = [
    ['/www/cgi-bin/echo', ECHO_CGI],
    ['/www/cgi-bin/sse', SSE_CGI],
    ['/www/cgi-bin/big', BIG_CGI],
    ['/ws.sh', WS_ECHO],
  ];
  const writes = files.map(([path, text]) => `printf '%s' '${text.replace(/'/g, `'\\''`)}' > ${path} && chmod +x ${path}`).join(' && ');
  return ['sh', '-c', `mkdir -p /www/cgi-bin && echo hello > /www/index.html && ${writes} && (nc -ll -p 9000 -e /ws.sh &) && httpd -p 8081 -h /www && exec httpd -f -p 8080 -h /www`];
}
