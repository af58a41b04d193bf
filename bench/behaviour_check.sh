#!/usr/bin/env bash
# Behaviour check for refactors: fixed-seed short runs of every method, recorded once from a
# reference build and compared with the build under test. What is compared:
#   - metrics.csv without its timing columns (seconds, images_per_s), value by value;
#   - summary.json without "seconds", numbers compared as numbers (0.1 == 0.10000000000000001,
#     so the shortest-float printing of the JSON library counts as the same value); a number
#     also matches when it agrees with the reference to the reference's own printed precision
#     (a668ab0 printed 8 significant digits, the float32 scales among them) or is the same
#     float32;
#   - the exported model file's datasets and attributes (h5dump), numbers compared as numbers.
# Runs use one thread, so the results are bit-for-bit repeatable on one machine (not across
# CPU kinds: record and compare on the same machine).
#
#   bench/behaviour_check.sh record  BUILD_DIR OUT_DIR     # e.g. a build of the commit before
#   bench/behaviour_check.sh compare BUILD_DIR REF_DIR     # exit 1 on any difference
#   bench/behaviour_check.sh auto    BUILD_DIR [BASE_REF]  # builds BASE_REF (default HEAD: the
#                                                          # last commit, before an uncommitted
#                                                          # refactor) in a worktree, records it
#                                                          # once per commit, compares BUILD_DIR
# Needs MNIST in data/mnist (bash data/fetch.sh) and h5dump (hdf5-tools).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
mode="${1:?usage: behaviour_check.sh record|compare|auto BUILD_DIR DIR}"
build="$(cd "${2:?BUILD_DIR}" && pwd)"

# name | extra tern-train flags (common: lenet5, 1500 train / 500 test MNIST images, 2 epochs,
# lenet5 and lr 0.02 unless given)
runs=(
  "fp|--method fp"
  "bc|--method bc"
  "bwn|--method bwn"
  "twn|--method twn"
  "twn-exact-filter|--method twn --exact --per-filter"
  "ttq|--method ttq --ttq-threshold 0.1"
  "admm|--method admm --rho 1e-3 --rho-growth 1.5"
  "admm-one-nobn|--method admm --alpha one --no-bn --lr 0.001"
  "admm-noeg-filter|--method admm --per-filter --no-extragradient"
  "pgd|--method pgd"
  "pgd-binary-adam|--method pgd --levels binary --optimizer adam --lr 0.001"
  "rpr|--method rpr --fractions 0.5,1 --stage-epochs 1"
  "inc|--method inc --stage-epochs 1"
  "tiny-cosine|--method twn --model tiny --lr-schedule cosine"
)

run_all() {  # BUILD OUT
  local b="$1" out="$2"
  mkdir -p "$out"
  for r in "${runs[@]}"; do
    local name="${r%%|*}" flags="${r#*|}"
    rm -rf "$out/$name"
    case " $flags " in *" --lr "*) ;; *) flags="--lr 0.02 $flags" ;; esac
    case " $flags " in *" --model "*) ;; *) flags="--model lenet5 $flags" ;; esac
    # plain defaults, not the method recipes of newer tern-trains (a recipe is no refactor)
    if "$b/apps/tern-train" --help | grep -q -- --no-recipe; then flags="--no-recipe $flags"; fi
    # shellcheck disable=SC2086
    "$b/apps/tern-train" --dataset mnist --data-dir "$root/data/mnist" \
      --train-limit 1500 --test-limit 500 --epochs 2 --batch-size 50 --seed 7 \
      --threads 1 --quiet --out "$out/$name" $flags > "$out/$name.stdout"
    if [ "$name" != fp ]; then
      "$b/apps/tern-export" --checkpoint "$out/$name/checkpoint.h5" --out "$out/$name/model.h5" \
        > /dev/null
      h5dump "$out/$name/model.h5" > "$out/$name/model.txt"
    fi
    echo "behaviour_check: $name done"
  done
}

compare_dirs() {  # REF NEW
  python3 - "$1" "$2" "${runs[@]}" <<'EOF'
import csv, json, re, struct, sys
ref, new, runs = sys.argv[1], sys.argv[2], [r.split('|')[0] for r in sys.argv[3:]]
bad = 0

def norm(v):
    """Strings that are numbers become floats (formatting differences are not differences)."""
    if isinstance(v, dict):
        # data-dir names the checkout the runs were made in (a worktree is another path)
        return {k: (x.split('/data/')[-1] if k == 'data-dir' else norm(x))
                for k, x in v.items() if k != 'seconds'}
    if isinstance(v, list): return [norm(x) for x in v]
    if isinstance(v, str):
        try: return float(v)
        except ValueError: return v
    return v

def report(name, what, a, b):
    global bad
    bad += 1
    print(f"DIFF {name} {what}: reference {a!r} != new {b!r}")

def same_number(a, b, f32ok):
    """b (new) equals a (reference) as printed: exactly, at a's significant digits, or as float32."""
    if a == b: return True
    if not (isinstance(a, (int, float)) and isinstance(b, (int, float))): return False
    if isinstance(a, bool) or isinstance(b, bool): return False
    digits = len(re.sub(r'[^0-9]', '', ('%r' % float(a)).split('e')[0]).lstrip('0')) or 1
    if float('%.*g' % (digits, b)) == float(a): return True
    f32 = lambda x: struct.unpack('f', struct.pack('f', x))[0]
    return f32ok and f32(a) == f32(b)

def diff(name, what, a, b, f32ok=False):
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            diff(name, f"{what}.{k}", a.get(k, '<missing>'), b.get(k, '<missing>'), f32ok)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)): diff(name, f"{what}[{i}]", x, y, f32ok)
    elif not same_number(a, b, f32ok):
        report(name, what, a, b)

num = re.compile(r'-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|-?nan|-?inf', re.I)
def tokens(text):
    """h5dump text as (kind, value) tokens: numbers as floats, everything else as words."""
    out = []
    for line in text.splitlines():
        pos = 0
        for m in num.finditer(line):
            out += [('w', w) for w in line[pos:m.start()].split()]
            out.append(('n', float(m.group())))
            pos = m.end()
        out += [('w', w) for w in line[pos:].split()]
    return out

for name in runs:
    with open(f"{ref}/{name}/metrics.csv") as f: a = list(csv.DictReader(f))
    with open(f"{new}/{name}/metrics.csv") as f: b = list(csv.DictReader(f))
    drop = lambda rows: [{k: (float(v) if v else None) for k, v in r.items()
                          if k not in ('seconds', 'images_per_s')} for r in rows]
    diff(name, 'metrics.csv', drop(a), drop(b))
    with open(f"{ref}/{name}/summary.json") as f: a = norm(json.load(f))
    with open(f"{new}/{name}/summary.json") as f: b = norm(json.load(f))
    diff(name, 'summary.json', a, b, f32ok=True)
    if name != 'fp':
        with open(f"{ref}/{name}/model.txt") as f: a = tokens(f.read().replace(ref, '<dir>'))
        with open(f"{new}/{name}/model.txt") as f: b = tokens(f.read().replace(new, '<dir>'))
        if a != b:
            first = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
            report(name, f'model file (token {first} of {len(a)}/{len(b)})',
                   a[first] if first < len(a) else None, b[first] if first < len(b) else None)
    print(f"behaviour_check: {name}: {'same' if bad == 0 else 'DIFFERENT'}")
print(f"behaviour_check: {len(runs)} runs, {bad} differences")
sys.exit(1 if bad else 0)
EOF
}

case "$mode" in
  record) mkdir -p "${3:?OUT_DIR}" && run_all "$build" "$(cd "$3" && pwd)" ;;
  compare)
    refdir="$(cd "${3:?REF_DIR}" && pwd)"
    newdir="$(mktemp -d)"
    run_all "$build" "$newdir"
    compare_dirs "$refdir" "$newdir"
    ;;
  auto)
    base="$(git -C "$root" rev-parse --short "${3:-HEAD}")"
    refdir="$root/runs/behaviour-$base"
    if [ ! -f "$refdir/.complete" ]; then
      wt="$(mktemp -d)/tern-$base"
      git -C "$root" worktree add --detach "$wt" "$base" > /dev/null
      cmake -S "$wt" -B "$wt/build" -DTERN_BUILD_TESTS=OFF -DTERN_BUILD_BENCH=OFF > /dev/null
      cmake --build "$wt/build" -j2 > /dev/null
      run_all "$wt/build" "$refdir"
      touch "$refdir/.complete"
      git -C "$root" worktree remove --force "$wt"
    fi
    newdir="$(mktemp -d)"
    run_all "$build" "$newdir"
    compare_dirs "$refdir" "$newdir"
    ;;
  *) echo "behaviour_check.sh: unknown mode '$mode' (record, compare, auto)" >&2; exit 1 ;;
esac
