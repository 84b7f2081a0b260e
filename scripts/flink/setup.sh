#!/usr/bin/env bash
# The PyFlink job's own environment: a virtualenv with apache-flink and what stream/operators
# needs (requirements.txt), and the Kafka connector jar from Maven Central (pom.xml).
#
#   scripts/flink/setup.sh [VENV_DIR]      default: .cache/flink-venv
#
# Environment: PYTHON (default python3, 3.9-3.12), FLINK_JARS_DIR (default .cache/flink-jars).
# Idempotent: a stamp in the venv records the hash of requirements.txt and pom.xml; when it
# matches and the jar is there, nothing is done. A failed run leaves no stamp, so the next
# one starts the venv afresh.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${1:-$root/.cache/flink-venv}"
jars="${FLINK_JARS_DIR:-$root/.cache/flink-jars}"
python="${PYTHON:-python3}"
requirements="$here/requirements.txt"
pom="$here/pom.xml"
stamp="$venv/.cep-flink-stamp"

fail() { echo "flink setup: error: $*" >&2; exit 1; }
say() { echo "flink setup: $*"; }

case "$venv" in /*) ;; *) venv="$PWD/$venv"; stamp="$venv/.cep-flink-stamp" ;; esac
case "$jars" in /*) ;; *) jars="$PWD/$jars" ;; esac

want="$(cat "$requirements" "$pom" | sha256sum | cut -d' ' -f1)"
connector="$(sed -n 's:.*<flink.kafka.connector.version>\(.*\)</flink.kafka.connector.version>.*:\1:p' "$pom")"
jar="$jars/flink-sql-connector-kafka-$connector.jar"

if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -f "$jar" ]]; then
    say "up to date ($venv, $jar)"
    exit 0
fi

# -- prerequisites -----------------------------------------------------------------------
command -v "$python" >/dev/null || fail "$python not found (set PYTHON to a Python 3.9-3.12)"
pyver="$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
case "$pyver" in
    3.9|3.10|3.11|3.12) ;;
    *) fail "apache-flink 2.2 ships wheels for Python 3.9-3.12, not $pyver (set PYTHON)" ;;
esac
java_bin="${JAVA_HOME:+$JAVA_HOME/bin/}java"
command -v "$java_bin" >/dev/null \
    || fail "no java (install a JDK 11/17/21 or set JAVA_HOME); PyFlink starts a JVM"
java_major="$("$java_bin" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)"
case "$java_major" in
    11|17|21) ;;
    *) say "warning: java $java_major at $java_bin; Flink 2.2 supports 11, 17 and 21 (17 here)" ;;
esac
command -v mvn >/dev/null || fail "mvn not found (apt-get install maven); it fetches the connector jar"

started=$SECONDS

# -- the virtualenv ----------------------------------------------------------------------
# A stale or half-built Flink venv is rebuilt; any other non-empty folder is left alone.
if [[ -d "$venv" && -n "$(ls -A "$venv")" && ! -f "$venv/.cep-flink-venv" ]]; then
    fail "$venv exists and is not a Flink venv made by this script; choose another folder"
fi
# A venv this script built, with apache-flink in it, is updated in place (requirements added
# since: a few MB, not apache-flink's 330 MB again); anything else is built afresh.
if [[ -f "$venv/.cep-flink-venv" && -x "$venv/bin/python" ]] \
        && "$venv/bin/python" -c "import pyflink" 2>/dev/null; then
    rm -f "$stamp"
    say "updating $venv"
else
    say "creating $venv with $python $pyver"
    mkdir -p "$(dirname "$venv")"
    "$python" -m venv --clear "$venv" || fail "python -m venv failed (apt-get install python3-venv?)"
    touch "$venv/.cep-flink-venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip \
        || fail "pip upgrade failed (is PyPI reachable?)"
fi
say "installing $(grep -c '^[a-z]' "$requirements") requirements (apache-flink is ~330 MB)"
"$venv/bin/python" -m pip install --quiet -r "$requirements" \
    || fail "pip install -r $requirements failed (see above)"
pip_done=$SECONDS

# The operators must import here exactly as in the gateway's venv: pure Python + msgspec.
PYTHONPATH="$root" "$venv/bin/python" - <<'EOF' || fail "the Flink venv cannot import the job"
import pemja  # noqa: F401  thread mode runs Python inside the JVM through pemja
import pyflink
import stream.flink.functions  # noqa: F401
import stream.flink.store_sink  # noqa: F401
import stream.operators.sessionize  # noqa: F401
import graph.neo4j_graph  # noqa: F401  the stores sink's adapters
import storage.cassandra_store  # noqa: F401
import storage.redis_live  # noqa: F401
print("flink setup: apache-flink", pyflink.version.__version__)
EOF

# -- the connector jar -------------------------------------------------------------------
say "resolving org.apache.flink:flink-sql-connector-kafka:$connector into $jars"
mkdir -p "$jars"
mvn_log="$jars/.mvn.log"
if ! mvn -B -q -Dstyle.color=never -f "$pom" dependency:copy -Dflink.jars.dir="$jars" \
        >"$mvn_log" 2>&1; then
    cat "$mvn_log" >&2
    fail "mvn dependency:copy failed for flink-sql-connector-kafka:$connector (is Maven Central reachable?)"
fi
[[ -f "$jar" ]] || fail "expected $jar after mvn dependency:copy"

echo "$want" > "$stamp"
say "done in $((SECONDS - started)) s (pip $((pip_done - started)) s);" \
    "venv $(du -sh "$venv" | cut -f1), jar $(du -h "$jar" | cut -f1)"
say "run the job: PYTHONPATH=$root $venv/bin/python -m stream.flink.job --help"
