"""scim_group_patch: seconds for one PATCH that adds 10,000 members to a group."""

from __future__ import annotations

import json
import statistics

from bench.deploy import BenchmarkError, RunOptions, ServerOptions, deployment
from bench.load import Client, Reply
from bench.payloads import members_patch, okta_group
from bench.report import Report
from bench.seed import ScimOrg, analyze, seed_scim_org
from idp.app import MAX_BODY_BYTES

MEMBERS = 10_000
REPEATS = 5  # add all, check, remove all, check; the first add is not set apart
SERVER = ServerOptions(workers=2, threads=2, worker_class="gthread")
PATCH_TIMEOUT = 120.0  # far above the target: a slow PATCH is measured, not cut off
SCIM_JSON = "application/scim+json"


def _seed() -> ScimOrg:
    org = seed_scim_org("groups", users=MEMBERS, keep_ids=True)
    analyze()
    return org


def _expect(reply: Reply, status: int, what: str) -> Reply:
    if reply.status != status:
        raise BenchmarkError(f"{what}: HTTP {reply.status}: {reply.body[:300]!r}")
    return reply


def _members(client: Client, path: str) -> list[str]:
    """The group's member ids, as GET /Groups/<id>?attributes=members lists them."""
    body = _expect(client.get(f"{path}?attributes=members"), 200, f"GET {path}").json()
    return [m["value"] for m in body.get("members", [])]


def run(options: RunOptions) -> Report:
    """Seed 10,000 provisioned users, create a group, then add them all in one PATCH (repeated)."""
    report = Report(
        "scim_group_patch",
        params={
            "members": MEMBERS,
            "repeats": REPEATS,
            "request": 'PATCH /Groups/<id> {"op": "add", "path": "members", "value": [10,000]}',
            "between_repeats": 'PATCH {"op": "remove", "path": "members"} (all members)',
            "server": SERVER.as_dict(),
        },
    )
    add_seconds: list[float] = []
    remove_seconds: list[float] = []
    with deployment(options, _seed, SERVER) as (dep, org):
        report.details["database_version"] = dep.database_version
        ids = list(org.member_ids)
        add_body = json.dumps(members_patch("add", ids)).encode()
        report.details["add_body_bytes"] = len(add_body)
        if len(add_body) > MAX_BODY_BYTES:
            raise BenchmarkError(
                f"the PATCH adding {MEMBERS} members is {len(add_body)} bytes, over the "
                f"server's request body limit of {MAX_BODY_BYTES} (MAX_CONTENT_LENGTH)"
            )
        remove_body = members_patch("remove", None)
        client = Client(dep.host, dep.port, org.token, SCIM_JSON, timeout=PATCH_TIMEOUT)
        try:
            created = client.send("POST", f"{org.base}/Groups", okta_group("Engineering"))
            group = f"{org.base}/Groups/{_expect(created, 201, 'POST /Groups').json()['id']}"
            for _ in range(REPEATS):
                added = _expect(client.send("PATCH", group, add_body), 204, "PATCH add")
                add_seconds.append(added.ms / 1000)
                members = _members(client, group)
                if len(members) != MEMBERS or set(members) != set(ids):
                    raise BenchmarkError(f"after the add the group has {len(members)} members")
                removed = _expect(client.send("PATCH", group, remove_body), 204, "PATCH remove")
                remove_seconds.append(removed.ms / 1000)
                if members := _members(client, group):
                    raise BenchmarkError(f"after the remove the group has {len(members)} members")
        finally:
            client.close()

    report.details["add_seconds"] = [round(s, 3) for s in add_seconds]
    report.details["remove_seconds"] = [round(s, 3) for s in remove_seconds]
    report.add("add_10k_median", statistics.median(add_seconds), "s")
    report.add("add_10k_max", max(add_seconds), "s")
    report.add("remove_all_median", statistics.median(remove_seconds), "s")
    return report
