"""Schemathesis hooks for scripts/api-fuzz: a request the API rejects (4xx) must not change
the catalog. The catalog's fingerprint (policies, VMs, protected items, job count, tokens) is
taken before every mutating request and compared after a rejection, once running jobs (which
change state by themselves) have ended."""
import hashlib
import json
import os
import time
import urllib.request

import schemathesis

BASE = os.environ["COFFRE_FUZZ_BASE"]
ADMIN = os.environ["COFFRE_FUZZ_ADMIN_TOKEN"]
_before = {}


def _get(path):
    request = urllib.request.Request(BASE + path, headers={"Authorization": "Bearer " + ADMIN})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)


def _fingerprint():
    for _ in range(600):
        if not _get("/api/v1/jobs?status=InProgress"):
            break
        time.sleep(0.1)
    state = {
        "policies": _get("/api/v1/policies"),
        "vms": _get("/api/v1/vms"),
        "items": _get("/api/v1/protected-items"),
        "jobs": len(_get("/api/v1/jobs?limit=100000")),
        "tokens": _get("/api/v1/tokens"),
    }
    return hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    if case.method.upper() != "GET":
        _before[id(case)] = _fingerprint()


@schemathesis.check
def catalog_unchanged_on_rejection(ctx, response, case):
    before = _before.pop(id(case), None)
    if before is None or not 400 <= response.status_code < 500:
        return None
    assert _fingerprint() == before, (
        f"{case.method} {case.formatted_path} was rejected ({response.status_code}) but changed the catalog")
    return None
