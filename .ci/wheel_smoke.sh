#!/usr/bin/env bash
# Wheel smoke test: build the wheel, install it (not editable) in a fresh venv, and run the main
# commands from a directory outside the repository, so only what the wheel ships is available.
# Usage: .ci/wheel_smoke.sh [PYTHON]   (PYTHON has `build` installed; default .venv/bin/python)
# Exits non-zero if the build, the install or any command fails.
set -euo pipefail
trap 'echo "wheel smoke: FAILED (line $LINENO)" >&2' ERR
repo="$(cd "$(dirname "$0")/.." && pwd)"
py="${1:-$repo/.venv/bin/python}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
unset VERIFIED_LORA_PROOFS PYTHONPATH

echo "== wheel smoke: build"
# Build from a copy of the files git would commit (tracked or new, not ignored), so no stale
# build/ or *.egg-info of an earlier local build can leak into the wheel.
src="$repo"
if git -C "$repo" rev-parse --git-dir >/dev/null 2>&1; then
  src="$work/src"
  mkdir -p "$src"
  (cd "$repo" && git ls-files -co --exclude-standard -z | while IFS= read -r -d '' f; do
     if [ -f "$f" ]; then printf '%s\0' "$f"; fi; done | tar --null -T - -cf -) | tar -C "$src" -xf -
fi
"$py" -m build --wheel --outdir "$work/dist" "$src" >"$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
whl="$(ls "$work"/dist/verified_lora-*.whl)"
echo "built $(basename "$whl")"

echo "== wheel smoke: install in a fresh venv"
python3 -m venv "$work/venv"
# The audit and interval layers of `verify` run too; torch is pinned to the CPU build CI already uses.
# (pipefail keeps pip's exit status; the filter only drops a local index's harmless warnings)
"$work/venv/bin/pip" install -q "$whl[audit,rigorous,proofs]" "torch==2.13.0" 2>&1 \
  | { grep -v "is ignored: it is neither a file nor a directory" || true; }

cd "$work"   # outside the repository: nothing from the source tree is importable
vl="$work/venv/bin/verified-lora"
"$work/venv/bin/python" - <<'PY'
import verified_lora, pathlib
path = pathlib.Path(verified_lora.__file__).resolve()
assert "site-packages" in path.parts, f"verified_lora imported from {path}, not from the installed wheel"
print(f"verified_lora imported from {path.parent}")
PY

rc=0
step() {
  echo "== wheel smoke: verified-lora $*"
  if "$vl" "$@"; then echo "-- ok: verified-lora $*"; else echo "-- FAILED (exit $?): verified-lora $*"; rc=1; fi
}
claims="$("$vl" prove --list | tail -n +3 | grep -c .)" || claims=0
echo "== wheel smoke: prove --list shows $claims claims"
if [ "$claims" -lt 1 ]; then echo "-- FAILED: no registered claims in the wheel"; rc=1; fi
step prove --check -q
step prove --recheck -q
step kernels --check
step verify
[ "$rc" -eq 0 ] && echo "wheel smoke: PASS" || echo "wheel smoke: FAIL"
exit "$rc"
