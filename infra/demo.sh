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
step "onboarding 文京区 (131032) and pushing its signed resident register"
files="${BCL_HOME:-.bcl}/demo-files"
bcl municipality add 131032 --name 文京区 --class special_ward --population 240000 \
    --offers juminhyo,inkan,tax_income --fee juminhyo=300@2022-01-04
bcl workload register 131032 --residents "${BCL_DEMO_RESIDENTS:-2000}" --out "${files}/register-131032.csv"
bcl push 131032 "${files}/register-131032.csv" --full
bcl push 131032 "${files}/register-131032.csv" --full --sequence 1   # the same batch again: nothing new
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
step "JPKI certificates: cards for three residents, a CRL from the test CA, a validity check"
bcl certificate ca
bcl certificate issue 131032 13103000001 13103000002 13103000003
bcl crl make "${files}/jpki.crl" --revoke 7A3F0C11D2E4B5A6:key_compromise
bcl crl import "${files}/jpki.crl"
bcl crl import "${files}/jpki.crl"   # the same CRL again: nothing new
bcl certificate check 7A3F0C11D2E4B5A6 || true
step "the BCL replica"
bcl replica counts
bcl resident show 131032 13103000001 --history
step "status"
bcl status
