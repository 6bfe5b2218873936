#!/usr/bin/env bash
# The tour of the platform: what an operator types, in order. Whatever happens, everything the
# tour started is stopped by PID on the way out (`bcl down`).
set -euo pipefail
events="${BCL_DEMO_EVENTS:-20000}"
export COLUMNS="${COLUMNS:-150}"  # wide tables even when the output is not a terminal

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
trap 'step "stopping everything"; bcl down' EXIT

step "starting the embedded broker and Postgres, migrating, creating topics"
bcl up
step "starting the worker (faust agents → Postgres projections)"
bcl worker --detach
step "publishing a sample stream of ${events} events from the workload generator"
bcl sample --count "${events}"
step "waiting for the projections to apply the whole log"
bcl wait --timeout 600
step "what the journal holds"
bcl journal --last 8
step "the journal's digest (live)"
bcl digest journal
step "rebuilding the journal from the log while it stays queryable"
bcl replay journal
step "the journal's digest (rebuilt): equal to the live one"
bcl digest journal
step "status"
bcl status
