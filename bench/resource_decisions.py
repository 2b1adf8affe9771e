"""resource_decisions: a decision on a resource three levels down, and the lookup of a
person's resources, against an org-level decision, in one run.

The org: 10,000 members and 10,000 resources (100 tenants, 900 projects, 9,000
environments). One person holds a tenant role (so a check on an environment walks up three
levels to find it); another holds a role on 1,000 environments directly (the lookup lists
them, first page of 50). All three are ``POST`` to the authorization API with the workspace
key, so the ratios compare the decisions alone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import insert, select

from bench.deploy import BenchmarkError, RunOptions, ServerOptions, deployment
from bench.load import Client, Target, generate_load
from bench.report import Report
from bench.seed import analyze, seed_org
from idp.actors import system_actor
from idp.db import db, new_id, utcnow
from idp.orgs import custom_roles
from idp.orgs.models import Membership, Organization
from idp.orgs.roles import Role
from idp.resources import services as resources
from idp.resources.models import Resource, ResourceGrant, ResourceRole, ResourceType

MEMBERS = 10_000
TENANTS, PROJECTS_PER_TENANT, ENVS_PER_PROJECT = 100, 9, 10  # 100 + 900 + 9,000 resources
GRANTED = 1_000
CONCURRENCY = 4
WARMUP = 1.5
WINDOW = 1.25
SETTLE = 0.1
ORDER = "ABCCBAABCCBA"  # A = org-level, B = resource 3 deep, C = lookup; mirrored
SERVER = ServerOptions(workers=2, threads=2, worker_class="gthread")


@dataclass(frozen=True)
class Seeded:
    slug: str
    workspace_key: str
    tenant_admin: str  # holds tenant_admin on tenant t0
    env_viewer: str  # holds env_viewer on 1,000 environments
    env: str  # an environment under t0


def _seed() -> Seeded:
    org = seed_org(members=MEMBERS)
    actor = system_actor("bench")
    workspace_id = db.session.scalar(select(Organization.workspace_id))
    for key in ("envs:deploy", "envs:view"):
        custom_roles.register_permission(actor, workspace_id, key=key)
    roles = [
        {"key": "admin", "permissions": ["envs:deploy", "envs:view"]},
        {"key": "viewer", "permissions": ["envs:view"]},
    ]
    resources.create_resource_type(actor, workspace_id, key="tenant", roles=roles)
    resources.create_resource_type(actor, workspace_id, key="project", parent="tenant", roles=roles)
    resources.create_resource_type(actor, workspace_id, key="env", parent="project", roles=roles)
    db.session.flush()
    org_id = db.session.scalar(select(Organization.id).where(Organization.slug == org.slug))
    kinds = dict(db.session.execute(select(ResourceType.key, ResourceType.id)).all())
    role_of = {
        (kind, key): role_id
        for role_id, kind, key in db.session.execute(
            select(ResourceRole.id, ResourceRole.type_id, ResourceRole.key)
        )
    }
    now = utcnow()
    rows: list[dict[str, object]] = []
    envs: list[str] = []

    def add(kind: str, external: str, parent: str | None) -> str:
        rid = new_id("res")
        rows.append(
            {
                "id": rid,
                "org_id": org_id,
                "type_id": kinds[kind],
                "external_id": external,
                "name": external,
                "parent_id": parent,
                "created_at": now,
            }
        )
        return rid

    tenants = []
    for t in range(TENANTS):
        tenant = add("tenant", f"t{t}", None)
        tenants.append(tenant)
        for p in range(PROJECTS_PER_TENANT):
            project = add("project", f"t{t}-p{p}", tenant)
            for e in range(ENVS_PER_PROJECT):
                envs.append(add("env", f"t{t}-p{p}-e{e}", project))
    db.session.execute(insert(Resource.__table__), rows)
    members = db.session.execute(
        select(Membership.id, Membership.user_id)
        .where(Membership.org_id == org_id, Membership.role == Role.MEMBER.value)
        .limit(2)
    ).all()
    (admin_mid, admin_uid), (viewer_mid, viewer_uid) = members
    grants = [
        {
            "id": new_id("rgr"),
            "org_id": org_id,
            "resource_id": tenants[0],
            "type_id": kinds["tenant"],
            "membership_id": admin_mid,
            "team_id": None,
            "role_id": role_of[(kinds["tenant"], "admin")],
            "created_at": now,
        }
    ]
    step = len(envs) // GRANTED
    grants += [
        {
            "id": new_id("rgr"),
            "org_id": org_id,
            "resource_id": envs[i * step],
            "type_id": kinds["env"],
            "membership_id": viewer_mid,
            "team_id": None,
            "role_id": role_of[(kinds["env"], "viewer")],
            "created_at": now,
        }
        for i in range(GRANTED)
    ]
    db.session.execute(insert(ResourceGrant.__table__), grants)
    db.session.commit()
    analyze()
    return Seeded(org.slug, org.workspace_key, admin_uid, viewer_uid, "t0-p0-e0")


def _body(**fields: object) -> bytes:
    return json.dumps(fields).encode()


def run(options: RunOptions) -> Report:
    """Load the three decisions in turn; report B and C against A."""
    report = Report(
        "resource_decisions",
        params={
            "members": MEMBERS,
            "resources": TENANTS * (1 + PROJECTS_PER_TENANT * (1 + ENVS_PER_PROJECT)),
            "granted_for_lookup": GRANTED,
            "org_level": "POST /api/v1/authorize (org:read)",
            "resource_level": "POST /api/v1/authorize, an env 3 levels below the tenant grant",
            "lookup": "POST /api/v1/authorize/resources (envs:view, type env), first page of 50",
            "concurrency": CONCURRENCY,
            "order": ORDER,
            "server": SERVER.as_dict(),
        },
    )
    with deployment(options, _seed, SERVER) as (dep, seeded):
        report.details["database_version"] = dep.database_version
        org_level = _body(user_id=seeded.tenant_admin, org=seeded.slug, permission="org:read")
        scoped = _body(
            user_id=seeded.tenant_admin,
            org=seeded.slug,
            permission="envs:deploy",
            resource={"type": "env", "id": seeded.env},
        )
        lookup = _body(
            user_id=seeded.env_viewer, org=seeded.slug, permission="envs:view", type="env", limit=50
        )
        client = Client(dep.host, dep.port, seeded.workspace_key)
        try:
            for path, body, check in (
                ("/api/v1/authorize", org_level, lambda j: j["allowed"]),
                ("/api/v1/authorize", scoped, lambda j: j["allowed"] and j["scope"]),
                ("/api/v1/authorize/resources", lookup, lambda j: len(j["data"]) == 50),
            ):
                reply = client.send("POST", path, json.loads(body))
                if reply.status != 200 or not check(reply.json()):
                    raise BenchmarkError(f"{path}: HTTP {reply.status}: {reply.body[:300]!r}")
        finally:
            client.close()
        key = seeded.workspace_key
        targets = {
            "A": Target("/api/v1/authorize", key, method="POST", body=org_level, name="org"),
            "B": Target("/api/v1/authorize", key, method="POST", body=scoped, name="resource"),
            "C": Target(
                "/api/v1/authorize/resources", key, method="POST", body=lookup, name="lookup"
            ),
        }
        load = generate_load(
            dep.host,
            dep.port,
            [targets[letter] for letter in ORDER],
            concurrency=CONCURRENCY,
            warmup=WARMUP,
            window=WINDOW,
            settle=SETTLE,
        )
    if load.errors:
        raise BenchmarkError(f"{load.errors} failed requests under load ({load.first_error})")
    report.details["segments"] = load.details()
    org_rps = report.add("org_decision_rps", load.rps("org"), "req/s")
    # Throughput ratios; the targets are costs: a resource decision at most 1.5x an
    # org-level one (ratio >= 0.67), the lookup's first page at most 2x (ratio >= 0.5).
    scoped_rps = report.add_ratio("resource_decision_rps", load.rps("resource"), "req/s", org_rps)
    lookup_rps = report.add_ratio("lookup_first_page_rps", load.rps("lookup"), "req/s", org_rps)
    report.details["cost_vs_org"] = {
        "resource_decision": round(org_rps.value / scoped_rps.value, 2),
        "lookup_first_page": round(org_rps.value / lookup_rps.value, 2),
    }
    return report
