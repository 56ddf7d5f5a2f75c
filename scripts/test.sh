#!/usr/bin/env bash
# Runs every check of dhcpair: lints, unit/property/store tests, the netns e2e scenarios with real
# DHCP clients, the long simulation, the Kubernetes checks, the benchmark in smoke mode and the
# image smoke. Needs root (network namespaces, buildah).
#
#   sudo ./scripts/test.sh [--allow-skip] [--steps ID[,ID...]] [--list]
#
# Each step is one check with one of three outcomes: passed (its commands exit 0), skipped (exit
# 77: a prerequisite is missing; the step's banner says which) or failed (anything else). Every
# step runs, also after one failed; the run ends with a table of the outcomes and
# `N checks: P passed, F failed, S skipped`, and it fails if a step failed OR WAS SKIPPED: a green
# run has run every check.
#   --allow-skip  skipped steps do not fail the run (a developer's quick local run; CI, .ci/run,
#                 never passes it). They are still counted and listed.
#   --steps       run only these steps; the others count as skipped ("not selected"), so such a
#                 run is green only with --allow-skip.
#   --list        print the steps and exit.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

ALLOW_SKIP=0
SELECTED=
while (($#)); do
  case $1 in
    --allow-skip) ALLOW_SKIP=1 ;;
    --steps)
      [[ $# -ge 2 ]] || { echo "--steps needs a list" >&2; exit 2; }
      SELECTED=,$2,
      shift
      ;;
    --list) SELECTED=list ;;
    -h | --help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

# shellcheck disable=SC1091
load_cargo_env() { [ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"; return 0; }
load_cargo_env
LOGS=$ROOT/target/test-logs
mkdir -p "$LOGS"
rm -f "$LOGS/nextest.summary"

# ------------------------------------------------------------------------------------------ steps
# One function per step; each runs with `set -e` in a subshell of its own.

step_deps() {
  ./scripts/install-deps.sh
}

step_fmt() {
  cargo fmt --all -- --check
}

step_dep_rules() {
  local crate
  for crate in dhcpair-wire dhcpair-model dhcpair-config dhcpair-engine; do
    if cargo tree -p "$crate" -e normal --prefix none | grep -Eq '^(tokio|kube|axum|socket2|nix|rusqlite|anyhow|clap) '; then
      echo "$crate depends on a forbidden crate:"
      cargo tree -p "$crate" -e normal | grep -E 'tokio|kube|axum|socket2|nix|rusqlite|anyhow|clap'
      return 1
    fi
  done
  if cargo tree -p dhcpair-store -e normal --prefix none | grep -q '^dhcpair-engine '; then
    echo "dhcpair-store depends on dhcpair-engine: it must only need dhcpair-model"
    return 1
  fi
  echo ok
}

step_clippy() {
  cargo clippy --workspace --all-targets --locked -- -D warnings
}

step_build() {
  cargo build --workspace --bins --locked
}

# The #[ignore]d tests nextest leaves out, and the step that runs each of them. An ignored test
# missing here fails the tests step: no test may be left out without a step that runs it.
declare -A IGNORED_RUN_BY=(
  [long_simulation]=sim-long
  [operator_renders_a_pair_that_serves_a_client_and_writes_its_states_and_pool_counts_into_the_crs]=operator-e2e
  [engine_and_wire_cost_per_lease]=measurements
  [one_lease_commits_cost]=measurements
)

step_tests() {
  local log=$LOGS/nextest.log rc=0
  cargo nextest run --workspace --locked --no-fail-fast 2>&1 | tee "$log" || rc=$?
  # nextest's own count, e.g. "Summary [ 95.1s] 420 tests run: 420 passed, 4 skipped".
  local summary
  summary=$(grep -E '^[[:space:]]*Summary \[' "$log" | tail -1 | sed -E 's/^[[:space:]]+//' || true)
  echo
  echo "nextest: ${summary:-no summary line (see $log)}"
  echo "${summary:-no summary}" > "$LOGS/nextest.summary"
  # Which tests it skipped, and which step runs each.
  local ignored missing=0 name skipped
  ignored=$(cargo nextest list --workspace --locked --run-ignored only --message-format oneline 2>"$LOGS/nextest-list.log" |
    awk '{print $NF}' | sort -u)
  echo "nextest leaves out the #[ignore]d tests; each is run by a later step:"
  for name in $ignored; do
    if [[ -n ${IGNORED_RUN_BY[$name]:-} ]]; then
      echo "  $name -> step ${IGNORED_RUN_BY[$name]}"
    else
      echo "  $name -> NO STEP RUNS IT (add it to IGNORED_RUN_BY in scripts/test.sh with the step that does)"
      missing=$((missing + 1))
    fi
  done
  skipped=$(sed -nE 's/.*[ ,]([0-9]+) skipped.*/\1/p' <<<"$summary")
  if [[ ${skipped:-0} -ne $(wc -w <<<"$ignored") ]]; then
    echo "nextest skipped ${skipped:-0} tests, but $(wc -w <<<"$ignored") are #[ignore]d: something else was left out"
    missing=$((missing + 1))
  elif ((missing == 0)); then
    echo "its ${skipped:-0} skipped are the #[ignore]d tests above, run by later steps" >> "$LOGS/nextest.summary"
  fi
  [[ $rc -eq 0 && $missing -eq 0 ]]
}

step_sim_seeds() {
  DHCPAIR_SIM_SEEDS=2000 cargo test --release --locked -p dhcpair-sim
}

step_sim_long() {
  DHCPAIR_SIM_SEEDS=30000 cargo test --release --locked -p dhcpair-sim --test sim -- --ignored --exact long_simulation
}

step_measurements() {
  # Measurements, not timing checks: they must build and run; their figures are printed.
  cargo test --release --locked -p dhcpair-engine --test throughput -- --ignored --exact --nocapture engine_and_wire_cost_per_lease
  cargo test --release --locked -p dhcpair-store --test commit_cost -- --ignored --exact --nocapture one_lease_commits_cost
}

step_conformance() {
  ./scripts/test-conformance.sh
}

step_k8s() {
  ./scripts/test-k8s.sh
}

step_operator_apiserver() {
  ./scripts/test-operator-apiserver.sh
}

step_operator_e2e() {
  ./scripts/test-operator-e2e.sh
}

step_bench_smoke() {
  cargo build --release --locked -p dhcpair -p bench-responder
  ./e2e/bench/run.sh --smoke
}

step_image() {
  ./scripts/test-image.sh
}

# id|function|what it checks
STEPS=(
  "deps|step_deps|scripts/install-deps.sh: every package and tool the checks use"
  "fmt|step_fmt|rustfmt"
  "dep-rules|step_dep_rules|the pure crates never depend on tokio, sockets or kube"
  "clippy|step_clippy|clippy -D warnings"
  "build|step_build|cargo build of every binary"
  "tests|step_tests|nextest: unit, property, store battery, simulation, e2e with real clients"
  "sim-seeds|step_sim_seeds|simulation: 2,000 seeds per fault family (release)"
  "sim-long|step_sim_long|simulation: 30,000 random seeds (release, the #[ignore]d long_simulation)"
  "measurements|step_measurements|the #[ignore]d measurements run once (release; no timing judged)"
  "conformance|step_conformance|e2e/conformance: dhcpair against Kea and ISC dhcpd, every scenario and the property"
  "k8s|step_k8s|helm lint --strict, helm template | kubernetes-validate"
  "operator-apiserver|step_operator_apiserver|CRDs, example and bad CRs, the controller against a real CRD API server"
  "operator-e2e|step_operator_e2e|the rendered pair in two namespaces serves a dhclient; the CRs get NORMAL and pool counts"
  "bench-smoke|step_bench_smoke|e2e/bench/run.sh --smoke: every server and pair starts and serves; dhcpair's pair replicates every lease"
  "image|step_image|buildah bud of the runtime stage, dhcpair --version inside it"
)

if [[ $SELECTED == list ]]; then
  for s in "${STEPS[@]}"; do
    IFS='|' read -r id _ what <<<"$s"
    printf '%-19s %s\n' "$id" "$what"
  done
  exit 0
fi
if [[ -n $SELECTED ]]; then
  for want in ${SELECTED//,/ }; do
    found=0
    for s in "${STEPS[@]}"; do [[ ${s%%|*} == "$want" ]] && found=1; done
    ((found)) || { echo "unknown step: $want (see --list)" >&2; exit 2; }
  done
fi

# ------------------------------------------------------------------------------------------ run

declare -A OUTCOME=() TOOK=()
passed=0 failed=0 skipped=0
for s in "${STEPS[@]}"; do
  IFS='|' read -r id fn what <<<"$s"
  if [[ -n $SELECTED && $SELECTED != *",$id,"* ]]; then
    OUTCOME[$id]="skipped (not selected)"
    TOOK[$id]=-
    skipped=$((skipped + 1))
    continue
  fi
  printf '\n==> [%s] %s\n' "$id" "$what"
  t0=$SECONDS
  (
    set -e
    "$fn"
  )
  rc=$?
  TOOK[$id]=$((SECONDS - t0))s
  [[ $id == deps ]] && load_cargo_env
  case $rc in
    0) OUTCOME[$id]=passed; passed=$((passed + 1)) ;;
    77) OUTCOME[$id]="SKIPPED (exit 77)"; skipped=$((skipped + 1)) ;;
    *) OUTCOME[$id]="FAILED (exit $rc)"; failed=$((failed + 1)) ;;
  esac
  printf '<== [%s] %s in %s\n' "$id" "${OUTCOME[$id]}" "${TOOK[$id]}"
done

echo
echo "== summary"
printf '%-19s %-24s %7s  %s\n' step outcome time what
for s in "${STEPS[@]}"; do
  IFS='|' read -r id _ what <<<"$s"
  printf '%-19s %-24s %7s  %s\n' "$id" "${OUTCOME[$id]}" "${TOOK[$id]}" "$what"
done
if [[ -f $LOGS/nextest.summary && ${OUTCOME[tests]} != skipped* ]]; then
  echo
  echo "tests step, nextest's count: $(sed ':a;N;$!ba;s/\n/; /g' "$LOGS/nextest.summary")"
fi
echo
echo "${#STEPS[@]} checks: $passed passed, $failed failed, $skipped skipped"
if ((failed)); then
  echo "FAILED: $failed check(s) failed"
  exit 1
fi
if ((skipped)); then
  if ((ALLOW_SKIP)); then
    echo "not every check ran: $skipped skipped (allowed by --allow-skip; this run proves nothing about them)"
    exit 0
  fi
  echo "FAILED: $skipped check(s) skipped; every check must run (--allow-skip for a quick local run)"
  exit 1
fi
echo "all ${#STEPS[@]} checks passed"
