#!/usr/bin/env bash
# The tour of the system: what an operator types, in order. It starts everything, onboards two
# municipalities, pushes their registers, issues cards and a CRL, runs a day of kiosk traffic
# through both centers, declares a disaster (victim ledger, shelter, an application, a 罹災証明書
# printed at a store), then shows usage and fee statements and writes the artifacts (CSV, JSON,
# Parquet, PNG, PDF) into one folder named at the end. Whatever happens, everything the tour started is stopped by
# PID on the way out (`bcl down`).
set -euo pipefail
export COLUMNS="${COLUMNS:-150}"  # wide tables even when the output is not a terminal
residents="${BCL_DEMO_RESIDENTS:-2000}"
scale="${BCL_DEMO_SCALE:-3}"
home="${BCL_HOME:-.bcl}"
started="$(date --iso-8601=seconds)"
out="${BCL_DEMO_OUT:-${home}/demo-$(date +%Y%m%d-%H%M%S)}"
files="${out}/inputs"
mkdir -p "${files}"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
finish() {
    step "stopping everything"
    bcl down
    printf '\n\033[1martifacts: %s\033[0m\n' "$(cd "${out}" && pwd)"
    ls -1 "${out}"
}
trap finish EXIT

# The traffic's day: the next working day in Japan (the counters open, so the day shows
# requests inside and outside their hours), the fiscal year its tax certificates are for, and
# its own fiscal year (April–March), for the fee statements.
read -r today day tax_year fiscal_year < <(python -c '
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo
import jpholiday
from producers.workload import tax_year
from schemas.calendar import fiscal_year, is_year_end_closure
today = datetime.now(ZoneInfo("Asia/Tokyo")).date()
day = today + timedelta(days=1)
while day.weekday() >= 5 or jpholiday.is_holiday(day) or is_year_end_closure(day):
    day += timedelta(days=1)
print(today, day, tax_year(day), fiscal_year(day))')
# Counters close on national holidays (祝日): this year and next go into each profile.
mapfile -t holidays < <(python -c '
import datetime, jpholiday
year = datetime.date.today().year
for day, _ in jpholiday.between(datetime.date(year, 1, 1), datetime.date(year + 1, 12, 31)):
    print(f"--holiday={day}")')

step "starting the embedded broker and Postgres, migrating, creating topics"
bcl up
step "starting the worker (faust agents → Postgres projections, the issuer)"
bcl worker --detach

step "onboarding 文京区 and 奥多摩町 on BCL, each with an electronic seal key"
bcl municipality add 131032 --name 文京区 --class special_ward --population 240000 --bcl \
    --offers juminhyo,inkan,tax_income,tax_assessment,tax_payment,risai,hisai \
    --fee juminhyo=300@2022-01-04 --mayor "文京区長 成澤 廣修" --disaster-system 2024-10-01 \
    "${holidays[@]}"
bcl municipality add 133086 --name 奥多摩町 --class town --population 4700 --bcl \
    --offers juminhyo,inkan --fee juminhyo=200@2023-04-01 --fee inkan=200@2023-04-01 \
    --mayor "奥多摩町長 師岡 伸公" "${holidays[@]}"
bcl municipality seal-key create 131032
bcl municipality seal-key create 133086
bcl municipality list

step "pushing their signed resident registers (${residents} residents each)"
for code in 131032 133086; do
    bcl workload register "${code}" --residents "${residents}" --seals --tax-year "${tax_year}" \
        --out "${files}/register-${code}.csv"
    bcl push "${code}" "${files}/register-${code}.csv" --full
done
bcl push 131032 "${files}/register-131032.csv" --full --sequence 1   # the same batch again: nothing new
bcl wait registry replica --timeout 300
bcl replica counts

step "JPKI: a My Number Card for every resident, then a CRL revoking some of them"
bcl certificate ca
bcl certificate issue 131032 --all
bcl certificate issue 133086 --all
bcl wait certificates --timeout 300   # the cards are listed from the certificates projection
mapfile -t revoked < <(bcl certificate list 131032 --kind user_authentication --status active \
    --limit 60 --serials-only | sed -n '1~4p' | sed 's/^/--revoke=/; s/$/:key_compromise/')
bcl crl make "${files}/jpki.crl" "${revoked[@]}"
bcl crl import "${files}/jpki.crl"
bcl crl import "${files}/jpki.crl"   # the same CRL again: nothing new
bcl wait certificates --timeout 300

step "a day of kiosk traffic (${day}) through the east and west centers"
bcl workload day 131032 133086 --on "${day}" --scale "${scale}" \
    --sample-pdf "${out}/certificate-sample.pdf"
step "the sample certificate, checked as anyone holding the paper would"
bcl verify "${out}/certificate-sample.pdf"

step "a disaster in 文京区: the victim ledger is seeded from the replica at the declaration"
disaster="131032-${today}-flood"
bcl disaster declare 131032 "${disaster}" --name "大雨による浸水被害" --kind flood --on "${today}"
bcl wait disaster --timeout 300
bcl disaster status "${disaster}"
# A victim to follow: an adult of the ledger whose card was not revoked by the CRL above.
IFS=$'\t' read -r victim victim_home neighbour < <(
    bcl disaster ledger "${disaster}" --format json | REVOKED="${revoked[*]}" python -c '
import json, os, sys
revoked = os.environ["REVOKED"]
adults = [v for v in json.load(sys.stdin)
          if v["auth_serial"] and v["auth_serial"] not in revoked and v["birth_date"] < "2000"]
print(adults[0]["auth_serial"], adults[0]["address"], adults[-1]["auth_serial"], sep="\t")')
revoked_card="$(sed 's/^--revoke=//; s/:.*//' <<<"${revoked[0]}")"
evacuee="$(bcl certificate list 133086 --kind user_authentication --status active --limit 1 \
    --serials-only)"

step "a shelter opens; cards are tapped at its reader (a 奥多摩町 evacuee too, a revoked card refused)"
bcl disaster shelter-open "${disaster}" S1 --name 文京区立第一中学校 --capacity 300 \
    --lat 35.7081 --lon 139.7525
for card in "${victim}" "${neighbour}" "${evacuee}" "${revoked_card}"; do
    bcl disaster tap "${disaster}" S1 "${card}"
done
bcl wait disaster --timeout 300
bcl disaster shelters "${disaster}"

step "an online application for a 罹災証明書: matched, accepted, the dwelling assessed, ready"
application="$(bcl disaster apply "${disaster}" "${victim}" --kind risai_certificate \
    --dwelling "${victim_home}" | sed -n 's/^application //p')"
# The same application sent again: refused as a duplicate, the applicant told why.
bcl disaster apply "${disaster}" "${victim}" --kind risai_certificate --dwelling "${victim_home}"
bcl wait disaster --timeout 300
bcl disaster accept "${disaster}" "${application}" --staff "文京区 防災課 佐藤"
bcl disaster assess "${disaster}" half --dwelling "${victim_home}" --staff "文京区 防災課 佐藤"
bcl disaster ready "${disaster}" "${application}"
bcl wait disaster --timeout 300
bcl disaster applications "${disaster}"

step "the 罹災証明書 printed at a convenience store: 10 yen, sealed like any certificate"
risai_request="$(python -c 'import uuid; print(uuid.uuid4())')"
bcl center submit --municipality 131032 --serial "${victim}" --type risai \
    --at "${day}T10:00:00+09:00" --request-id "${risai_request}" --save "${out}/risai-sample.pdf"
bcl center deliver "${risai_request}" --fee-paid 10 --printed-at "${day}T10:01:00+09:00"
bcl verify "${out}/risai-sample.pdf"
bcl disaster status "${disaster}"
bcl disaster ledger "${disaster}" --format csv --out "${out}/victim-ledger.csv"

step "usage: what analysts see"
bcl wait usage --timeout 300
bcl usage --by store_operator
bcl usage --by outside_counter_hours,other_municipality
bcl usage --outcome rejected --by reason
bcl usage --by municipality,certificate_type --format csv --out "${out}/usage-by-type.csv"
bcl usage --by municipality,hour --format json --out "${out}/usage-by-hour.json"
bcl usage --by day,municipality,store_operator,center,certificate_type,outcome,reason \
    --format parquet --out "${out}/usage.parquet"
bcl usage chart operators --out "${out}/operators.png"
bcl usage chart hours --out "${out}/hours.png"
bcl usage chart monthly --out "${out}/monthly.png"

step "fees: the month's store settlement and the fiscal year's charges, in yen"
bcl wait fees --timeout 300
month="${day:0:7}"
bcl fees statement 131032 --month "${month}"
bcl fees statement 131032 --fiscal-year "${fiscal_year}"
bcl fees statement 133086 --fiscal-year "${fiscal_year}"
bcl fees report --month "${month}" --format csv --out "${out}/fees-${month}.csv"
bcl fees report --fiscal-year "${fiscal_year}" --format json --out "${out}/fees-FY${fiscal_year}.json"

step "every projection reads the log again since the tour began, onto a copy of itself: each event
applied twice changes nothing, so every digest stays the same"
projections=(journal registry replica certificates revocations issuer usage fees disaster)
for projection in "${projections[@]}"; do bcl digest "${projection}"; done
bcl replay --all --since "${started}"
for projection in "${projections[@]}"; do bcl digest "${projection}"; done

step "usage, fees and the disaster rebuilt from the beginning: the same digests again"
for projection in usage fees disaster; do bcl replay "${projection}"; done
for projection in usage fees disaster; do bcl digest "${projection}"; done

step "status"
bcl status
