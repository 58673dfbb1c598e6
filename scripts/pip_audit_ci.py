"""CI's dependency audit: pip-audit, saying plainly when it could not audit anything.

pip-audit asks PyPI's advisory service (or OSV) about every installed distribution. Where
that service cannot be reached (no network, a mirror that answers "not found" for all),
pip-audit reports every dependency as skipped and says "No known vulnerabilities found",
which would read as a pass. This script tells the two apart:

- a known vulnerability in an audited dependency fails the build (exit 1);
- no advisory database reachable: a clear NOT AUDITED warning, exit 0, unless
  PIP_AUDIT_REQUIRED=1 (then exit 1), so a network outage cannot pass for a clean audit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def main() -> int:
    pip_audit = Path(sys.executable).with_name("pip-audit")
    proc = subprocess.run(  # noqa: S603  (a fixed command line)
        [str(pip_audit), "--skip-editable", "--progress-spinner", "off", "--format", "json"],
        capture_output=True, text=True, timeout=600, check=False,
    )
    strict = os.environ.get("PIP_AUDIT_REQUIRED") == "1"
    try:
        report = json.loads(proc.stdout)
        deps = report["dependencies"]
    except (json.JSONDecodeError, KeyError, TypeError):
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"pip-audit: NOT AUDITED: the advisory database could not be reached ({last[:200]})",
              file=sys.stderr)
        return 1 if strict else 0
    audited = [d for d in deps if "skip_reason" not in d]
    vulnerable = [d for d in audited if d.get("vulns")]
    for dep in vulnerable:
        for vuln in dep["vulns"]:
            fixes = ", ".join(vuln.get("fix_versions") or []) or "no fix yet"
            print(f"pip-audit: {dep['name']} {dep['version']}: {vuln['id']} (fixed in {fixes})",
                  file=sys.stderr)
    if vulnerable:
        return 1
    if not audited:
        print(f"pip-audit: NOT AUDITED: the advisory database answered for none of the {len(deps)} "
              "installed distributions (no network to PyPI or OSV?). Set PIP_AUDIT_REQUIRED=1 to "
              "make this fail.", file=sys.stderr)
        return 1 if strict else 0
    skipped = len(deps) - len(audited)
    print(f"pip-audit: {len(audited)} distributions audited, no known vulnerabilities"
          + (f" ({skipped} could not be audited)" if skipped else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
