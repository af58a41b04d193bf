#!/usr/bin/env bash
# Fault injection for tern's apps (docs/reliability.md). Every case must end in a clear error
# (a non-zero exit below 128 with a "tern-<app>: ..." line on stderr) or in an exact result;
# never in a signal, a hang, or a wrong result with exit 0.
#
#   tests/fault_inject.sh BUILD_DIR
#
# Cases (FAULT_CASES, default "kill disk readonly flip"):
#   kill      kill -9 of tern-train at random moments (some during a checkpoint write), then
#             --resume (or a fresh start where no checkpoint was written yet); the finished
#             run's metrics.csv (epoch, test_loss, test_acc) and summary.json must equal those
#             of an uninterrupted run with the same seed.
#   disk      (root) a full tmpfs as --out: with checkpoints (300 KiB: the first checkpoint
#             does not fit), without (--no-checkpoint, the disk filled to the last byte),
#             --resume while still full (the checkpoint already there must survive), then
#             --resume once there is room again (must finish exactly like the reference).
#   readonly  a read-only --out (root: a read-only tmpfs; otherwise chmod a-w): new run,
#             --no-checkpoint, --resume, tern-export into it.
#   flip      single-bit flips of a checkpoint, each read by tern-train --resume, tern-export
#             and tern-eval --checkpoint, and of an exported model read by tern-eval --model.
#             Exit 0 counts as exact only if the output equals that of the unflipped file.
#
# Prints one summary line per case: tried / clean errors / exact / crashes / hangs / wrong
# (exit 0, different result) / unclear (non-zero exit without a message) / lost (an earlier
# result destroyed). Exit status: 0 every case passed; 1 a crash, hang, wrong result, unclear
# error or lost data; 2 usage or setup error; 77 skipped (no MNIST data; or not root, so the
# disk case could not run, and everything else passed).
#
# Environment: TERN_DATA_DIR (default <repo>/data/mnist; data/fetch.sh downloads it),
# FAULT_SEED (1), FAULT_KILLS (8 kill trials), FAULT_CKPT_FLIPS (60), FAULT_MODEL_FLIPS (120),
# FAULT_TIMEOUT (seconds per app run, 20 for flips; runs that train get 120), FAULT_WORK (work
# folder, default a fresh one under $TMPDIR, removed at the end unless FAULT_KEEP=1),
# FAULT_FINDINGS (folder for the inputs that crashed or hung an app, default
# /tmp/fuzz-findings/fault).
set -uo pipefail

usage() {
    echo "usage: tests/fault_inject.sh BUILD_DIR" >&2
    exit 2
}
[[ $# -eq 1 ]] || usage
build=$(cd "$1" 2>/dev/null && pwd) || { echo "fault_inject.sh: no build directory '$1'" >&2; exit 2; }
repo=$(cd "$(dirname "$0")/.." && pwd)
apps="$build/apps"
for a in tern-train tern-export tern-eval; do
    [[ -x "$apps/$a" ]] || { echo "fault_inject.sh: $apps/$a missing (build the apps)" >&2; exit 2; }
done
data=${TERN_DATA_DIR:-$repo/data/mnist}
cases=${FAULT_CASES:-kill disk readonly flip}
seed=${FAULT_SEED:-1}
kills=${FAULT_KILLS:-8}
ckpt_flips=${FAULT_CKPT_FLIPS:-60}
model_flips=${FAULT_MODEL_FLIPS:-120}
flip_timeout=${FAULT_TIMEOUT:-20}
train_timeout=120
findings=${FAULT_FINDINGS:-/tmp/fuzz-findings/fault}

if ! ls "$data"/train-images-idx3-ubyte* "$data"/t10k-labels-idx1-ubyte* > /dev/null 2>&1; then
    echo "fault_inject.sh: SKIPPED: no MNIST data in $data (run data/fetch.sh, or set TERN_DATA_DIR)"
    exit 77
fi
root=0
[[ $(id -u) -eq 0 ]] && root=1

work=${FAULT_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/tern-fault.XXXXXX")}
mkdir -p "$work" "$findings"
mounts=()
bg=""
cleanup() {
    [[ -n "$bg" ]] && kill -9 "$bg" 2> /dev/null
    for m in "${mounts[@]}"; do umount "$m" 2> /dev/null || umount -l "$m" 2> /dev/null; done
    [[ "${FAULT_KEEP:-0}" == 1 ]] || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The job of the kill, disk and readonly cases (the issue's tiny run) and the smaller one the
# flips resume (it must be quick: it runs once per flip).
job=(--dataset mnist --data-dir "$data" --model lenet5 --method twn --threads 1 --seed 1 --quiet)
main_job=("${job[@]}" --epochs 3 --train-limit 1000 --test-limit 500)
flip_job=("${job[@]}" --epochs 2 --train-limit 300 --test-limit 200)
train=("$apps/tern-train")

# ---- random numbers: a 31-bit LCG, the same sequence on every bash
rng=$seed
rand_below() {  # R = uniform-ish in [0, $1)
    rng=$(( (rng * 1103515245 + 12345) % 2147483648 ))
    local hi=$(( rng >> 8 ))
    rng=$(( (rng * 1103515245 + 12345) % 2147483648 ))
    R=$(( ((hi << 23) | (rng >> 8)) % $1 ))
}

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# ---- tallies per case
declare -A tried clean exact crash hang wrong unclear lost
tally() { eval "$1[$2]=\$(( \${$1[$2]:-0} + 1 ))"; }
failures=()
fail() {  # case, kind, description
    tally "$2" "$1"
    failures+=("$1: $2: $3")
    echo "  FAIL $1 ($2): $3"
}

# run T NAME CMD...: runs CMD under timeout with stdout/stderr in $work/log/NAME.{out,err};
# sets RC, OUT, ERR.
mkdir -p "$work/log"
run() {
    local t=$1 name=$2
    shift 2
    OUT="$work/log/$name.out" ERR="$work/log/$name.err"
    timeout -k 5 "$t" "$@" > "$OUT" 2> "$ERR"
    RC=$?
}

# outcome APP: the kind of ending of the last run(): ok, clean, unclear, hang, crash.
outcome() {
    if [[ $RC -eq 0 ]]; then echo ok
    elif [[ $RC -eq 124 || $RC -eq 137 ]]; then echo hang
    elif [[ $RC -ge 128 ]]; then echo crash
    elif grep -qE "^$1: .+" "$ERR"; then echo clean
    else echo unclear
    fi
}

# What a finished run must reproduce: the test columns of metrics.csv by name, and summary.json's
# results (not its timings).
results() {
    local dir=$1
    [[ -s "$dir/metrics.csv" && -s "$dir/summary.json" ]] || { echo "incomplete"; return; }
    awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
             { print $col["epoch"] "," $col["test_loss"] "," $col["test_acc"] }' "$dir/metrics.csv"
    grep -E '"(status|epochs_completed|final_test_acc|best_test_acc|best_epoch|nonzero_weights)"' \
        "$dir/summary.json"
}

# The last lines of a run's stderr, for a failure message.
said() { tail -n 2 "$ERR" | tr '\n' ' ' | cut -c1-200; }

# record CASE APP WHAT: tallies the last run() as the case expects a clean error or exit 0
# checked by the caller (exact/wrong are tallied by the caller for exit 0).
record_error() {
    local c=$1 app=$2 what=$3 kind
    kind=$(outcome "$app")
    tally tried "$c"
    case $kind in
        clean) tally clean "$c" ;;
        unclear) fail "$c" unclear "$what: exit $RC without a '$app: ...' message: $(said)" ;;
        hang) fail "$c" hang "$what: no end within the timeout (exit $RC)" ;;
        crash) fail "$c" crash "$what: killed by signal $((RC - 128)): $(said)" ;;
        ok) return 1 ;;
    esac
    return 0
}

summary_line() {
    local c=$1
    printf '%-16s tried %3d  clean errors %3d  exact %3d  crashes %2d  hangs %2d  wrong %2d  unclear %2d  lost %2d\n' \
        "$c" "${tried[$c]:-0}" "${clean[$c]:-0}" "${exact[$c]:-0}" "${crash[$c]:-0}" \
        "${hang[$c]:-0}" "${wrong[$c]:-0}" "${unclear[$c]:-0}" "${lost[$c]:-0}"
}

# mid_run JOB DIR: a run of JOB killed (-9) as soon as its first checkpoint is in place: DIR
# then holds a mid-run checkpoint.h5 and metrics.csv, as a crash leaves them.
mid_run() {
    local dir=$1
    shift
    rm -rf "$dir"
    "${train[@]}" "$@" --out "$dir" > /dev/null 2>&1 &
    bg=$!
    local deadline=$(( SECONDS + train_timeout ))
    while kill -0 "$bg" 2> /dev/null && [[ ! -e "$dir/checkpoint.h5" ]] && (( SECONDS < deadline )); do
        sleep 0.01
    done
    kill -9 "$bg" 2> /dev/null
    wait "$bg" 2> /dev/null
    bg=""
    [[ -s "$dir/checkpoint.h5" ]]
}

echo "fault_inject.sh: $build, data $data, seed $seed, work $work$([[ $root == 1 ]] || echo ', not root')"

# ---- the reference: the uninterrupted run
need_ref=0
for c in $cases; do [[ $c == kill || $c == disk ]] && need_ref=1; done
ref="$work/ref"
if [[ $need_ref == 1 ]]; then
    t0=$(now_ms)
    run $train_timeout ref "${train[@]}" "${main_job[@]}" --out "$ref"
    ref_ms=$(( $(now_ms) - t0 ))
    if [[ $RC -ne 0 || "$(results "$ref")" == incomplete ]]; then
        echo "fault_inject.sh: the reference run failed (exit $RC): $(said)" >&2
        exit 1
    fi
    echo "reference run: $ref_ms ms, $(grep -c . "$ref/metrics.csv") lines of metrics.csv"
fi

# ---- (a) kill -9 at random moments, then resume
case_kill() {
    local c=kill i k dir args rc during=0 killed=0
    for ((i = 1; i <= kills; i++)); do
        dir="$work/kill/$i"
        rm -rf "$dir"
        mkdir -p "$dir"
        # every third trial aims at a checkpoint write; every second one is killed twice
        local rounds=$(( 1 + (i % 2) ))
        for ((k = 1; k <= rounds; k++)); do
            args=()
            [[ -e "$dir/checkpoint.h5" ]] && args=(--resume)
            "${train[@]}" "${main_job[@]}" --out "$dir" "${args[@]}" > "$work/log/kill-$i-$k.out" \
                2> "$work/log/kill-$i-$k.err" &
            bg=$!
            if (( i % 3 == 1 )); then
                # busy-wait for the tmp file of a checkpoint write, then kill within 0-9 ms
                local deadline=$(( SECONDS + train_timeout ))
                while kill -0 "$bg" 2> /dev/null && [[ ! -e "$dir/checkpoint.h5.tmp" ]] &&
                      (( SECONDS < deadline )); do :; done
                rand_below 10
                sleep "0.00$R"
            else
                rand_below "$ref_ms"
                sleep "$(( R / 1000 )).$(printf %03d $(( R % 1000 )))"
            fi
            kill -9 "$bg" 2> /dev/null
            wait "$bg" 2> /dev/null  # (no "Killed" line from bash)
            rc=$?
            bg=""
            if [[ $rc -eq 137 ]]; then
                killed=$((killed + 1))
                [[ -e "$dir/checkpoint.h5.tmp" ]] && during=$((during + 1))
            elif [[ $rc -ne 0 ]]; then
                RC=$rc ERR="$work/log/kill-$i-$k.err"
                record_error $c tern-train "trial $i round $k (not yet killed)"
            fi
        done
        args=()
        [[ -e "$dir/checkpoint.h5" ]] && args=(--resume)
        run $train_timeout "kill-$i-final" "${train[@]}" "${main_job[@]}" --out "$dir" "${args[@]}"
        if record_error $c tern-train "trial $i: the final ${args[*]:-fresh} run"; then
            # a clean error is no resume: the run is lost
            [[ $(outcome tern-train) == clean ]] && fail $c lost "trial $i: ${args[*]:-fresh run} refused: $(said)"
            continue
        fi
        if [[ "$(results "$dir")" == "$(results "$ref")" ]]; then
            tally exact $c
        else
            fail $c wrong "trial $i: the resumed run's metrics.csv/summary.json differ from the reference (diff <(results $ref) <(results $dir))"
            diff <(results "$ref") <(results "$dir") | head -n 6 | sed 's/^/    /'
        fi
    done
    echo "  $killed kills, $during during a checkpoint write (checkpoint.h5.tmp present at the kill)"
}

# ---- (b) a full disk
disk_mnt=""
mount_tmpfs() {  # DIR SIZE [ro]
    mkdir -p "$1"
    mount -t tmpfs -o "size=$2${3:+,$3}" tmpfs "$1" 2> "$work/log/mount.err" || return 1
    mounts+=("$1")
}
unmount() {
    umount "$1" 2> /dev/null || umount -l "$1"
    local m keep=()
    for m in "${mounts[@]}"; do [[ $m == "$1" ]] || keep+=("$m"); done
    mounts=("${keep[@]}")
}
fill() { dd if=/dev/zero of="$1/filler" bs=4k > /dev/null 2>&1; sync; }

case_disk() {
    local c=disk mnt="$work/disk" dir
    if [[ $root != 1 ]]; then
        echo "  SKIPPED: not root (a small tmpfs needs mount)"
        return 3
    fi
    if ! mount_tmpfs "$mnt" 300k; then
        echo "  SKIPPED: mount -t tmpfs failed: $(cat "$work/log/mount.err")"
        return 3
    fi
    # b1: checkpoints on a 300 KiB disk: the first checkpoint does not fit
    dir="$mnt/run"
    run $train_timeout disk-ckpt "${train[@]}" "${main_job[@]}" --out "$dir"
    if ! record_error $c tern-train "300 KiB disk, checkpoints"; then
        fail $c wrong "300 KiB disk, checkpoints: exit 0 although no checkpoint fits"
    fi
    [[ -e "$dir/checkpoint.h5.tmp" ]] && echo "  note: $dir/checkpoint.h5.tmp left behind"
    # b2: --no-checkpoint on a disk full to the last byte
    rm -rf "${mnt:?}"/*
    mkdir -p "$mnt/run2"
    fill "$mnt"
    run $train_timeout disk-nockpt "${train[@]}" "${main_job[@]}" --no-checkpoint --out "$mnt/run2"
    if ! record_error $c tern-train "full disk, --no-checkpoint"; then
        local got
        got=$(ls -l "$mnt/run2" 2> /dev/null | awk 'NR > 1 { printf "%s %s B; ", $9, $5 }')
        fail $c wrong "full disk, --no-checkpoint: exit 0 though nothing could be written (${got:-no files})"
        tally lost $c
    fi
    unmount "$mnt"
    # b3: --resume while full: the checkpoint already there must survive
    local mid="$work/mid-main"
    if ! mid_run "$mid" "${main_job[@]}"; then
        echo "  could not make a mid-run checkpoint for --resume" >&2
        fail $c crash "the mid-run fixture run wrote no checkpoint"
        return 1
    fi
    local size
    size=$(du -sk "$mid" | cut -f1)
    mount_tmpfs "$mnt" "$(( size + 256 ))k" || { fail $c crash "remount failed"; return 1; }
    cp -r "$mid" "$mnt/run3"
    fill "$mnt"
    run $train_timeout disk-resume-full "${train[@]}" "${main_job[@]}" --resume --out "$mnt/run3"
    if ! record_error $c tern-train "--resume on a full disk"; then
        fail $c wrong "--resume on a full disk: exit 0 though no checkpoint could be written"
    fi
    if ! cmp -s "$mid/checkpoint.h5" "$mnt/run3/checkpoint.h5"; then
        fail $c lost "--resume on a full disk: the checkpoint that was there changed or vanished"
    fi
    # b4: room again: --resume must finish exactly like the reference
    rm -f "$mnt/filler"
    mount -o remount,size=64m "$mnt"
    run $train_timeout disk-resume-room "${train[@]}" "${main_job[@]}" --resume --out "$mnt/run3"
    if ! record_error $c tern-train "--resume once there is room"; then
        if [[ "$(results "$mnt/run3")" == "$(results "$ref")" ]]; then
            tally exact $c
        else
            fail $c wrong "--resume once there is room: results differ from the reference"
            diff <(results "$ref") <(results "$mnt/run3") | head -n 6 | sed 's/^/    /'
        fi
    else
        [[ $(outcome tern-train) == clean ]] && fail $c lost "--resume once there is room refused: $(said)"
    fi
    unmount "$mnt"
}

# ---- (c) a read-only --out
case_readonly() {
    local c=readonly ro="$work/ro" mid="$work/mid-main"
    [[ -s "$mid/checkpoint.h5" ]] || mid_run "$mid" "${main_job[@]}" ||
        { fail $c crash "the mid-run fixture run wrote no checkpoint"; return 1; }
    rm -rf "$ro"
    if [[ $root == 1 ]]; then
        mount_tmpfs "$ro" 64m || { echo "  SKIPPED: mount failed: $(cat "$work/log/mount.err")"; return 3; }
    fi
    mkdir -p "$ro/existing"
    cp -r "$mid" "$ro/run"
    if [[ $root == 1 ]]; then
        mount -o remount,ro "$ro" || { echo "  SKIPPED: remount ro failed"; unmount "$ro"; return 3; }
    else
        chmod -R a-w "$ro"
    fi
    local t0 ms
    t0=$(now_ms)
    run $train_timeout ro-new "${train[@]}" "${main_job[@]}" --out "$ro/new/run"
    ms=$(( $(now_ms) - t0 ))
    record_error $c tern-train "read-only --out (new run dir)" ||
        fail $c wrong "read-only --out: exit 0 although nothing could be written"
    (( ms > 5000 )) && echo "  note: the read-only --out was refused only after $ms ms"
    run $train_timeout ro-nockpt "${train[@]}" "${main_job[@]}" --no-checkpoint --out "$ro/existing"
    record_error $c tern-train "read-only --out, --no-checkpoint" ||
        fail $c wrong "read-only --out, --no-checkpoint: exit 0 although nothing could be written"
    run $train_timeout ro-resume "${train[@]}" "${main_job[@]}" --resume --out "$ro/run"
    record_error $c tern-train "--resume in a read-only run dir" ||
        fail $c wrong "--resume read-only: exit 0 although nothing could be written"
    cmp -s "$mid/checkpoint.h5" "$ro/run/checkpoint.h5" || fail $c lost "read-only checkpoint changed"
    run $flip_timeout ro-export "$apps/tern-export" --checkpoint "$ro/run/checkpoint.h5" --out "$ro/model.h5"
    record_error $c tern-export "tern-export --out into a read-only dir" ||
        fail $c wrong "tern-export into a read-only dir: exit 0"
    if [[ $root == 1 ]]; then unmount "$ro"; else chmod -R u+w "$ro"; fi
}

# ---- (d) single-bit flips
flip_bit() {  # FILE OFFSET BIT
    local v
    v=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
    v=$(( v ^ (1 << $3) ))
    printf "\\$(printf %03o "$v")" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
# eval's stdout without its speed ("(1820 images/s, batch 100)") and file size
eval_result() { sed -E 's/\([0-9.]+ images\/s, /(/; s/^size on disk [0-9]+ bytes; //' "$1"; }
model_dump() { h5dump -m '%.9g' "$1" 2> /dev/null | sed 1d; }

# judge CASE APP WHAT SAME: tallies the last run(); SAME is "yes" if its output equals the
# unflipped file's. A failing input is kept in $findings.
judge() {
    local c=$1 app=$2 what=$3 same=$4 input=$5
    if record_error "$c" "$app" "$what"; then
        case $(outcome "$app") in crash | hang) cp "$input" "$findings/${what// /_}.h5" ;; esac
        return
    fi
    if [[ $same == yes ]]; then
        tally exact "$c"
    else
        fail "$c" wrong "$what: exit 0 with a result different from the unflipped file's"
    fi
}

case_flip() {
    command -v h5dump > /dev/null || echo "  note: no h5dump: tern-export results compared as bytes"
    local base="$work/mid-flip" c ckpt model j off bit size f dir
    mid_run "$base" "${flip_job[@]}" || { fail flip-checkpoint crash "the base run wrote no checkpoint"; return 1; }
    ckpt="$base/checkpoint.h5"
    # the unflipped results
    local good="$work/flip-good"
    rm -rf "$good" && cp -r "$base" "$good"
    run $train_timeout good-resume "${train[@]}" "${flip_job[@]}" --resume --out "$good"
    [[ $RC -eq 0 ]] || { echo "fault_inject.sh: the unflipped resume failed: $(said)" >&2; return 1; }
    local good_results
    good_results=$(results "$good")
    run $flip_timeout good-export "$apps/tern-export" --checkpoint "$ckpt" --out "$work/good-model.h5"
    [[ $RC -eq 0 ]] || { echo "fault_inject.sh: the unflipped export failed: $(said)" >&2; return 1; }
    model="$work/good-model.h5"
    local good_dump good_eval_ckpt good_eval_model
    good_dump=$(model_dump "$model")
    run $flip_timeout good-eval-ckpt "$apps/tern-eval" --checkpoint "$ckpt" --data-dir "$data" --test-limit 200 --threads 1
    good_eval_ckpt=$(eval_result "$OUT")
    run $flip_timeout good-eval-model "$apps/tern-eval" --model "$model" --data-dir "$data" --test-limit 200 --threads 1
    good_eval_model=$(eval_result "$OUT")

    # checkpoint flips: half anywhere, half in the first 64 KiB (HDF5's superblock, root group
    # and object headers: where libhdf5 trusts the bytes most)
    c=flip-checkpoint
    size=$(stat -c %s "$ckpt")
    for ((j = 1; j <= ckpt_flips; j++)); do
        if (( j % 2 )); then rand_below "$size"; else rand_below $(( size < 65536 ? size : 65536 )); fi
        off=$R
        rand_below 8
        bit=$R
        f="$work/flip.h5"
        dir="$work/flip-run"
        rm -rf "$dir" && cp -r "$base" "$dir"
        flip_bit "$dir/checkpoint.h5" "$off" "$bit"
        cp "$dir/checkpoint.h5" "$f"
        run "$flip_timeout" "flip-resume" "${train[@]}" "${flip_job[@]}" --resume --out "$dir"
        judge $c tern-train "checkpoint byte $off bit $bit tern-train --resume" \
            "$([[ "$(results "$dir")" == "$good_results" ]] && echo yes)" "$f"
        rm -f "$work/m.h5"
        run "$flip_timeout" "flip-export" "$apps/tern-export" --checkpoint "$f" --out "$work/m.h5"
        judge $c tern-export "checkpoint byte $off bit $bit tern-export" \
            "$([[ $RC -eq 0 && "$(model_dump "$work/m.h5")" == "$good_dump" ]] && echo yes)" "$f"
        run "$flip_timeout" "flip-eval-ckpt" "$apps/tern-eval" --checkpoint "$f" --data-dir "$data" --test-limit 200 --threads 1
        judge $c tern-eval "checkpoint byte $off bit $bit tern-eval --checkpoint" \
            "$([[ "$(eval_result "$OUT")" == "$good_eval_ckpt" ]] && echo yes)" "$f"
    done
    summary_line $c

    c=flip-model
    size=$(stat -c %s "$model")
    for ((j = 1; j <= model_flips; j++)); do
        if (( j % 2 )); then rand_below "$size"; else rand_below $(( size < 65536 ? size : 65536 )); fi
        off=$R
        rand_below 8
        bit=$R
        f="$work/flip-model.h5"
        cp "$model" "$f"
        flip_bit "$f" "$off" "$bit"
        run "$flip_timeout" "flip-eval-model" "$apps/tern-eval" --model "$f" --data-dir "$data" --test-limit 200 --threads 1
        judge $c tern-eval "model byte $off bit $bit tern-eval --model" \
            "$([[ "$(eval_result "$OUT")" == "$good_eval_model" ]] && echo yes)" "$f"
    done
    summary_line $c
}

skipped=()
for c in $cases; do
    echo "== $c"
    t0=$(now_ms)
    case $c in
        kill) case_kill ;;
        disk) case_disk ;;
        readonly) case_readonly ;;
        flip) case_flip ;;
        *) echo "fault_inject.sh: unknown case '$c' (known: kill disk readonly flip)" >&2; exit 2 ;;
    esac
    rc=$?
    if [[ $rc -eq 3 ]]; then
        skipped+=("$c")
        printf '%-16s SKIPPED\n' "$c"
    elif [[ $c != flip ]]; then
        summary_line "$c"
    fi
    echo "   ($(( ($(now_ms) - t0) / 1000 )) s)"
done

echo "== summary"
for c in $cases; do
    if [[ " ${skipped[*]} " == *" $c "* ]]; then printf '%-16s SKIPPED\n' "$c"
    elif [[ $c == flip ]]; then summary_line flip-checkpoint; summary_line flip-model
    else summary_line "$c"
    fi
done
if [[ ${#failures[@]} -gt 0 ]]; then
    echo "fault_inject.sh: ${#failures[@]} failures (inputs that crashed or hung an app: $findings):"
    printf '  %s\n' "${failures[@]}"
    exit 1
fi
if [[ ${#skipped[@]} -gt 0 ]]; then
    echo "fault_inject.sh: SKIPPED ${skipped[*]} (everything else passed)"
    exit 77
fi
echo "fault_inject.sh: every case ended in a clear error or an exact result"
