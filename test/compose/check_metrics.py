#!/usr/bin/python3
"""compose/'s Prometheus and Grafana files: `promtool check config` (which also checks the
alert rules file), `promtool check rules`, the Grafana dashboard JSON parses and has panels
with queries, and every corvo_* metric a query or an alert names is one corvo registers
(the names in src/ops/*.cpp), so a renamed metric cannot leave a silent empty panel.

Usage: check_metrics.py SOURCE_DIR PROMTOOL
"""
import glob
import json
import os
import re
import subprocess
import sys

source, promtool = sys.argv[1], sys.argv[2]
compose = os.path.join(source, 'compose')
failures = []

for args in (['check', 'config', os.path.join(compose, 'prometheus', 'prometheus.yml')],
             ['check', 'rules', os.path.join(compose, 'prometheus', 'alerts.yml')]):
    r = subprocess.run([promtool, *args], capture_output=True, text=True)
    if r.returncode != 0:
        failures.append('promtool %s: %s%s' % (' '.join(args), r.stdout, r.stderr))

known = set()
for path in glob.glob(os.path.join(source, 'src', 'ops', '*.cpp')):
    known.update(re.findall(r'"(corvo_[a-z_]+)"', open(path).read()))
if len(known) < 40:
    failures.append('only %d metric names found in src/ops' % len(known))


def names_in(expr):
    out = set()
    for name in re.findall(r'\bcorvo_[a-z_]+', expr):
        for suffix in ('_bucket', '_sum', '_count'):
            if name.endswith(suffix) and name[:-len(suffix)] in known:
                name = name[:-len(suffix)]
        out.add(name)
    return out


dashboard = json.load(open(os.path.join(compose, 'grafana', 'dashboards', 'corvo.json')))
exprs = [t['expr'] for p in dashboard['panels'] for t in p.get('targets', [])]
if len(exprs) < 20:
    failures.append('the dashboard has %d queries' % len(exprs))
alerts = open(os.path.join(compose, 'prometheus', 'alerts.yml')).read()
used = set()
for e in exprs + [alerts]:
    used |= names_in(e)
for name in sorted(used - known):
    failures.append('%s is used in compose/ but corvo registers no such metric' % name)
for path in ('grafana/provisioning/datasources/prometheus.yml',
             'grafana/provisioning/dashboards/corvo.yml', 'prometheus/ops-token'):
    if not os.path.exists(os.path.join(compose, path)):
        failures.append('missing compose/' + path)

for f in failures:
    print('FAIL: ' + f)
print('%d queries, %d metric names used, %d known' % (len(exprs), len(used), len(known)))
sys.exit(1 if failures else 0)
