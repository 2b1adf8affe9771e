// A real OpenID Provider (oidc-provider 9) for Gatehouse's end-to-end SSO tests.
//
//   node server.mjs CONFIG.json
//
// CONFIG.json (written by tests/peers/__init__.py):
//   {
//     "port": 40123,
//     "issuer": "http://127.0.0.1:40123",
//     "clients": [{"client_id", "client_secret", "redirect_uris", ...client metadata}],
//     "accounts": {"<login>": {"password", "claims": {sub?, email, name, groups, amr?, acr?}}},
//     "jwks": {"keys": [private JWKs]},     optional; RS256 + ES256 keys are generated if absent
//     "claims": {"<scope>": ["claim", ...]}, optional; replaces the scope -> claims table below
//     "cookie_keys": ["..."]                optional; signs the session cookies
//   }
//
// Logging in is a plain HTML form (login + password, checked against "accounts"); consent is
// granted automatically. ID tokens carry the scope's claims (conformIdTokenClaims: false) plus
// the account's amr/acr. The authorization response carries RFC 9207 `iss`. When listening,
// one line "oidc-provider ready <issuer>" goes to stdout.

import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';

import Provider from 'oidc-provider';

const DEFAULT_CLAIMS = {
  openid: ['sub'],
  email: ['email', 'email_verified'],
  profile: [
    'name',
    'given_name',
    'family_name',
    'middle_name',
    'nickname',
    'preferred_username',
    'picture',
    'locale',
    'zoneinfo',
    'updated_at',
  ],
  groups: ['groups'],
};

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const { port, issuer } = config;

// accountId (the sub) -> { login, password, claims, amr, acr }
const accounts = new Map();
for (const [login, account] of Object.entries(config.accounts ?? {})) {
  const { amr, acr, ...claims } = account.claims ?? {};
  const sub = String(claims.sub ?? login);
  accounts.set(sub, {
    login, password: account.password, claims: { ...claims, sub }, amr, acr,
  });
}

function findByLogin(login) {
  for (const account of accounts.values()) {
    if (account.login === login) return account;
  }
  return undefined;
}

function generateJwks() {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
  return {
    keys: [
      { ...rsa, kid: `rs256-${randomUUID()}`, alg: 'RS256', use: 'sig' },
      { ...ec, kid: `es256-${randomUUID()}`, alg: 'ES256', use: 'sig' },
    ],
  };
}

const claims = { ...(config.claims ?? DEFAULT_CLAIMS) };
// Claims are released per scope; acr, amr and auth_time ride on openid so that every ID token
// says how the user authenticated (as Entra ID and Okta do), not only when asked for.
claims.openid = [...new Set([...(claims.openid ?? []), 'sub', 'acr', 'amr', 'auth_time'])];
const acrValues = [...new Set([...accounts.values()].map((a) => a.acr).filter(Boolean))];

const provider = new Provider(issuer, {
  clients: config.clients,
  jwks: config.jwks ?? generateJwks(),
  claims,
  acrValues,
  // Scope claims go into the ID token too, not only into userinfo.
  conformIdTokenClaims: false,
  features: {
    devInteractions: { enabled: false },
    rpInitiatedLogout: { enabled: true },
    claimsParameter: { enabled: true },
  },
  cookies: {
    // Cookies ignore ports: keep two providers on 127.0.0.1 from sharing a session.
    names: {
      session: `_session_${port}`,
      interaction: `_interaction_${port}`,
      resume: `_interaction_resume_${port}`,
    },
    keys: config.cookie_keys ?? [randomBytes(32).toString('base64url')],
  },
  // Explicit lifetimes (seconds); the defaults are functions that log a notice when used.
  ttl: {
    AccessToken: 3600,
    AuthorizationCode: 60,
    Grant: 3600,
    IdToken: 3600,
    Interaction: 600,
    RefreshToken: 86400,
    Session: 3600,
  },
  interactions: {
    url: (_ctx, interaction) => `/interaction/${interaction.uid}`,
  },
  async findAccount(_ctx, sub) {
    const account = accounts.get(sub);
    if (!account) return undefined;
    return {
      accountId: sub,
      async claims() {
        return { ...account.claims };
      },
    };
  },
  // Auto-consent: every client is first-party here, so whatever it asks for is granted.
  async loadExistingGrant(ctx) {
    const { client, session, account } = ctx.oidc;
    const grantId = ctx.oidc.result?.consent?.grantId ?? session.grantIdFor(client.clientId);
    let grant = grantId ? await ctx.oidc.provider.Grant.find(grantId) : undefined;
    if (grant?.accountId !== account.accountId) {
      grant = new ctx.oidc.provider.Grant({ clientId: client.clientId, accountId: account.accountId });
    }
    grant.addOIDCScope([...ctx.oidc.requestParamScopes].join(' '));
    grant.addOIDCClaims([...ctx.oidc.requestParamClaims]);
    await grant.save();
    return grant;
  },
  renderError(ctx, out) {
    ctx.type = 'html';
    ctx.body = `<!DOCTYPE html><title>error</title><h1>${escape(out.error)}</h1>`
      + `<p>${escape(out.error_description ?? '')}</p>`;
  },
});

provider.on('server_error', (_ctx, err) => console.error('server_error', err));
for (const event of ['authorization.error', 'grant.error', 'introspection.error', 'userinfo.error']) {
  provider.on(event, (_ctx, err) => console.error(event, err.error ?? err.name, err.error_description ?? err.message));
}

function escape(value) {
  return String(value).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function loginPage(uid, { login = '', error = '' } = {}) {
  return `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Sign in</title></head>
<body>
${error ? `<p class="error">${escape(error)}</p>` : ''}
<form method="post" action="/interaction/${escape(uid)}/login" autocomplete="off">
  <input type="text" name="login" value="${escape(login)}" required>
  <input type="password" name="password" required>
  <button type="submit">Sign in</button>
</form>
<form method="post" action="/interaction/${escape(uid)}/abort">
  <button type="submit">Cancel</button>
</form>
</body></html>`;
}

function send(res, status, body, type = 'text/html; charset=utf-8') {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
  res.end(body);
}

async function readForm(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 64 * 1024) throw new Error('form too large');
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

async function interaction(req, res, uid, action) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) {
    send(res, 400, 'interaction mismatch', 'text/plain');
    return;
  }
  if (action === undefined && req.method === 'GET') {
    if (details.prompt.name !== 'login') {
      // Consent is granted by loadExistingGrant; anything else is not modelled here.
      send(res, 501, `prompt ${escape(details.prompt.name)} not supported`, 'text/plain');
      return;
    }
    send(res, 200, loginPage(uid, { login: details.params.login_hint ?? '' }));
    return;
  }
  if (action === 'login' && req.method === 'POST') {
    const form = await readForm(req);
    const account = findByLogin(form.get('login') ?? '');
    if (!account || account.password !== form.get('password')) {
      send(res, 401, loginPage(uid, { login: form.get('login') ?? '', error: 'Invalid login or password' }));
      return;
    }
    const login = { accountId: account.claims.sub, remember: true };
    if (account.amr) login.amr = account.amr;
    if (account.acr) login.acr = account.acr;
    await provider.interactionFinished(req, res, { login }, { mergeWithLastSubmission: false });
    return;
  }
  if (action === 'abort' && req.method === 'POST') {
    await provider.interactionFinished(
      req,
      res,
      { error: 'access_denied', error_description: 'End-User aborted interaction' },
      { mergeWithLastSubmission: false },
    );
    return;
  }
  send(res, 405, 'method not allowed', 'text/plain');
}

const callback = provider.callback();
const INTERACTION = /^\/interaction\/([\w-]+)(?:\/(login|abort))?$/;

const server = createServer((req, res) => {
  const { pathname } = new URL(req.url, issuer);
  const match = INTERACTION.exec(pathname);
  if (!match) {
    callback(req, res);
    return;
  }
  interaction(req, res, match[1], match[2]).catch((err) => {
    console.error('interaction error', err);
    if (!res.headersSent) send(res, 400, `${err.name}: ${err.message}`, 'text/plain');
    else res.end();
  });
});

server.listen(port, '127.0.0.1', () => {
  console.log(`oidc-provider ready ${issuer}`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close();
    process.exit(0);
  });
}
