#!/usr/bin/env bash
# Generates the Python modules of the protocol (proto/schedapi/v1/*.proto) into gen/
# (or the directory given), for client.py: schedapi/v1/*_pb2.py and *_pb2_grpc.py.
#
# The generated code must suit the protobuf runtime it is imported with, so it is made
# here, on the machine that runs it, and not committed (gen/ is git-ignored). Generators,
# in order of preference:
#   protoc + grpc_python_plugin   Debian/Ubuntu: apt-get install protobuf-compiler
#                                 protobuf-compiler-grpc (they match python3-protobuf
#                                 and python3-grpcio)
#   python3 -m grpc_tools.protoc  pip install grpcio-tools (matches pip's protobuf); Debian's
#                                 python3-grpc-tools is too old (protoc 3.5: no proto3 optional)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
proto="$(cd "$here/../../proto" && pwd)"
out="${1:-$here/gen}"
python="${PYTHON:-python3}"

# grpc_tools' protoc is usable from 3.15 on (proto3 optional fields without a flag).
grpc_tools_ok() {
  local v
  v="$("$python" -m grpc_tools.protoc --version 2>/dev/null | awk '{print $2}')" || return 1
  [ -n "$v" ] || return 1
  local major="${v%%.*}" rest="${v#*.}"
  local minor="${rest%%.*}"
  [ "$major" -gt 3 ] || { [ "$major" -eq 3 ] && [ "$minor" -ge 15 ]; }
}

if command -v protoc >/dev/null && command -v grpc_python_plugin >/dev/null; then
  generate() { protoc -I "$proto" --python_out="$1" --grpc_out="$1" --plugin=protoc-gen-grpc="$(command -v grpc_python_plugin)" "$proto"/schedapi/v1/*.proto; }
  using="$(protoc --version) with grpc_python_plugin"
elif grpc_tools_ok; then
  generate() { "$python" -m grpc_tools.protoc -I "$proto" --python_out="$1" --grpc_python_out="$1" "$proto"/schedapi/v1/*.proto; }
  using="grpc_tools ($("$python" -m grpc_tools.protoc --version))"
else
  echo "generate.sh: no protocol compiler for Python found: install protoc and grpc_python_plugin" >&2
  echo "  (Debian/Ubuntu: apt-get install protobuf-compiler protobuf-compiler-grpc python3-grpcio python3-protobuf)" >&2
  echo "  or pip install grpcio-tools (its protoc must be 3.15 or newer)" >&2
  exit 1
fi

# Into a fresh directory beside the target, then swapped in: a reader never sees half a package.
mkdir -p "$(dirname "$out")"
tmp="$(mktemp -d "$out.tmp.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
generate "$tmp"

# The modules must import with this Python's runtime (newer generated code refuses an older runtime).
if ! "$python" -c 'import grpc, google.protobuf' 2>/dev/null; then
  echo "generate.sh: $(command -v "$python") has no grpc or protobuf module: install them (Debian/Ubuntu:" >&2
  echo "  apt-get install python3-grpcio python3-protobuf; else pip install grpcio protobuf), or name another" >&2
  echo "  Python with PYTHON=/usr/bin/python3" >&2
  exit 1
fi
if ! err="$(cd "$tmp" && "$python" -c 'from schedapi.v1 import management_pb2_grpc, worker_pb2_grpc' 2>&1)"; then
  echo "generate.sh: the generated modules do not import with $python:" >&2
  echo "$err" | tail -3 >&2
  echo "  (a generator newer than the protobuf runtime? use the generator that matches it, see the top of this script)" >&2
  exit 1
fi

rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
echo "generated $out/schedapi/v1 with $using"
