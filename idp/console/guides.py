"""Step-by-step guides for each IdP's admin console, one source for the setup portal's pages
and for ``docs/idps/`` (``python -m idp.console.guides`` writes those).

Placeholders in a step (``{acs_url}``, ``{entity_id}``, ``{metadata_url}``, ``{redirect_uri}``,
``{scim_url}``) are filled with the connection's own values on the page.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

from markupsafe import Markup, escape

from idp.connections.models import ConnectionKind


@dataclass(frozen=True)
class Guide:
    key: str
    name: str
    kind: ConnectionKind
    preset: str
    sso: tuple[str, ...]  # connecting sign-in
    give_back: str  # what to bring back to the portal
    scim: tuple[str, ...] = ()  # connecting provisioning, when the IdP offers SCIM


_GUIDES = (
    Guide(
        "okta",
        "Okta",
        ConnectionKind.SAML,
        "okta",
        sso=(
            "In the Okta Admin Console, open **Applications → Applications** and click "
            "**Create App Integration**; choose **SAML 2.0** and click **Next**.",
            "Name the app (your product's name) and click **Next**.",
            "**Single sign-on URL**: `{acs_url}` (keep *Use this for Recipient URL and "
            "Destination URL* checked).",
            "**Audience URI (SP Entity ID)**: `{entity_id}`.",
            "**Name ID format**: *EmailAddress*; **Application username**: *Email*.",
            "**Attribute Statements**: `email` → `user.email`, `firstName` → "
            "`user.firstName`, `lastName` → `user.lastName`.",
            "**Group Attribute Statements**: name `groups`, filter *Matches regex* `.*`.",
            "Click **Next**, then **Finish**. On the **Assignments** tab, assign the people "
            "or groups who may sign in.",
            "On the **Sign On** tab, under *SAML 2.0*, copy the **Metadata URL**.",
        ),
        give_back="Paste the Metadata URL below.",
        scim=(
            "In the app, open **General → App Settings → Edit**, set **Provisioning** to "
            "*SCIM* and save.",
            "On the **Provisioning** tab, **Integration → Edit**: **SCIM connector base URL** "
            "`{scim_url}`; **Unique identifier field for users** `userName`.",
            "**Supported provisioning actions**: *Push New Users*, *Push Profile Updates*, "
            "*Push Groups*; **Authentication Mode**: *HTTP Header*, and paste the token.",
            "Click **Test Connector Configuration**, then **Save**.",
            "Under **To App**, enable *Create Users*, *Update User Attributes* and "
            "*Deactivate Users*; then push groups on the **Push Groups** tab.",
        ),
    ),
    Guide(
        "entra",
        "Microsoft Entra ID",
        ConnectionKind.SAML,
        "entra",
        sso=(
            "In the Microsoft Entra admin center, open **Identity → Applications → Enterprise "
            "applications** and click **New application**, then **Create your own "
            "application**.",
            "Name it, choose *Integrate any other application you don't find in the gallery "
            "(Non-gallery)* and click **Create**.",
            "Open **Single sign-on**, choose **SAML**, and edit **Basic SAML Configuration**.",
            "**Identifier (Entity ID)**: `{entity_id}`.",
            "**Reply URL (Assertion Consumer Service URL)**: `{acs_url}`. Click **Save**.",
            "Under **Attributes & Claims**, click **Edit → Add a group claim**, choose "
            "*Groups assigned to the application*, source attribute *Group ID*.",
            "Under **SAML Certificates**, copy the **App Federation Metadata Url**.",
            "Open **Users and groups** and assign who may sign in.",
        ),
        give_back="Paste the App Federation Metadata Url below.",
        scim=(
            "In the same enterprise application, open **Provisioning → Get started**; set "
            "**Provisioning Mode** to *Automatic*.",
            "**Admin Credentials**: **Tenant URL** `{scim_url}`, **Secret Token**: paste the "
            "token. Click **Test Connection**, then **Save**.",
            "Under **Settings**, choose *Sync only assigned users and groups*; set "
            "**Provisioning Status** to *On* and save.",
        ),
    ),
    Guide(
        "google",
        "Google Workspace",
        ConnectionKind.SAML,
        "google",
        sso=(
            "In the Google Admin console, open **Apps → Web and mobile apps**, click **Add "
            "app → Add custom SAML app**, name it and click **Continue**.",
            "Under *Option 1*, click **Download Metadata** and keep the file; click **Continue**.",
            "**ACS URL**: `{acs_url}`; **Entity ID**: `{entity_id}`.",
            "**Name ID format**: *EMAIL*; **Name ID**: *Basic Information → Primary email*. "
            "Click **Continue**.",
            "**Attribute mapping**: *Primary email* → `email`, *First name* → `firstName`, "
            "*Last name* → `lastName`; under **Group membership**, the groups to send, as "
            "`groups`. Click **Finish**.",
            "Open the app's **User access** and turn it **ON** for everyone or the "
            "organizational units that may sign in.",
        ),
        give_back="Paste the content of the downloaded metadata file below.",
    ),
    Guide(
        "adfs",
        "Microsoft AD FS",
        ConnectionKind.SAML,
        "adfs",
        sso=(
            "In **AD FS Management**, right-click **Relying Party Trusts → Add Relying Party "
            "Trust**, choose **Claims aware** and click **Start**.",
            "Choose **Import data about the relying party published online** and enter "
            "`{metadata_url}`.",
            "Give a display name, choose an access control policy and finish.",
            "Right-click the trust, **Edit Claim Issuance Policy → Add Rule → Send LDAP "
            "Attributes as Claims**: *E-Mail-Addresses* → *E-Mail Address*, *Display-Name* → "
            "*Name*, *Token-Groups - Unqualified Names* → *Role*.",
            "Add a rule **Transform an Incoming Claim**: *E-Mail Address* → *Name ID*, format "
            "*Email*.",
            "Your federation metadata is at "
            "`https://<your AD FS host>/FederationMetadata/2007-06/FederationMetadata.xml`.",
        ),
        give_back="Paste that federation metadata URL below.",
    ),
    Guide(
        "saml",
        "Another SAML 2.0 IdP",
        ConnectionKind.SAML,
        "generic",
        sso=(
            "In your IdP, create a SAML 2.0 application (a *service provider*); if it can "
            "import metadata, give it `{metadata_url}`.",
            "Otherwise: **ACS URL** `{acs_url}` (HTTP-POST) and **Entity ID** `{entity_id}`.",
            "**NameID**: the person's email address (or a persistent id).",
            "Send the attributes `email`, `displayName` (or `givenName` and `sn`) and "
            "`groups`; sign the assertion with RSA-SHA256.",
            "Assign the people who may sign in.",
        ),
        give_back="Give its metadata URL, or paste its metadata XML, below.",
    ),
    Guide(
        "oidc",
        "Another OpenID Connect IdP",
        ConnectionKind.OIDC,
        "generic",
        sso=(
            "In your IdP, create a *web* application (confidential client) using the "
            "authorization code flow.",
            "**Redirect URI**: `{redirect_uri}`.",
            "Allow the scopes `openid email profile` (and `groups`, if it offers groups).",
            "Assign the people who may sign in, and copy the **issuer URL**, **client ID** "
            "and **client secret**.",
        ),
        give_back="Enter the issuer, client ID and client secret below.",
    ),
)
GUIDES: dict[str, Guide] = {guide.key: guide for guide in _GUIDES}
_CODE = re.compile(r"`([^`]*)`")
_BOLD = re.compile(r"\*\*([^*]+)\*\*")
_ITALIC = re.compile(r"\*([^*]+)\*")


def markdown(guide: Guide) -> str:
    """The guide as ``docs/idps/<key>.md`` holds it (placeholders left for the reader)."""
    lines = [f"# {guide.name}", "", "## Sign-in (SSO)", ""]
    lines += [f"{n}. {step}" for n, step in enumerate(guide.sso, 1)]
    lines += ["", guide.give_back.replace(" below", " in the setup portal"), ""]
    if guide.scim:
        lines += ["## Provisioning (SCIM)", ""]
        lines += [f"{n}. {step}" for n, step in enumerate(guide.scim, 1)]
        lines.append("")
    return "\n".join(lines)


def write_docs(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for guide in _GUIDES:
        (folder / f"{guide.key}.md").write_text(markdown(guide))


if __name__ == "__main__":  # pragma: no cover - a maintainer's command
    write_docs(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/idps"))


def render_step(text: str, values: dict[str, str]) -> Markup:
    """One step as HTML: the text escaped first, then its placeholders filled (escaped) and
    its ``code``, **bold** and *italic* marks turned into tags."""
    html = str(escape(text))
    for name, value in values.items():
        html = html.replace("{" + name + "}", str(escape(value)))
    html = _CODE.sub(r"<code>\1</code>", html)
    html = _BOLD.sub(r"<strong>\1</strong>", html)
    return Markup(_ITALIC.sub(r"<em>\1</em>", html))  # noqa: S704 - built from escaped text
