<?php

/*
 * SimpleSAMLphp 1.19 (Debian bookworm) configuration for Gatehouse's end-to-end SSO tests.
 *
 * tests/peers/__init__.py copies this directory into a temporary one, writes peer.json beside
 * it, and starts `php -S 127.0.0.1:PORT -t /usr/share/simplesamlphp/www` with
 * SIMPLESAMLPHP_CONFIG_DIR pointing there. Every value that changes per run comes from
 * peer.json, so nothing here needs escaping and /etc/simplesamlphp is never read.
 */

$peer = json_decode(file_get_contents(__DIR__ . '/peer.json'), true, 512, JSON_THROW_ON_ERROR);

$config = [
    'baseurlpath' => $peer['base_url'],
    'certdir' => $peer['state_dir'] . '/cert/',
    'loggingdir' => $peer['state_dir'] . '/log/',
    'datadir' => $peer['state_dir'] . '/data/',
    'tempdir' => $peer['state_dir'] . '/tmp/',
    'metadatadir' => __DIR__ . '/metadata/',

    'technicalcontact_name' => 'Gatehouse tests',
    'technicalcontact_email' => 'na@example.org',
    'timezone' => 'UTC',

    'secretsalt' => $peer['secret_salt'],
    'auth.adminpassword' => $peer['admin_password'],
    'admin.protectindexpage' => true,
    'admin.protectmetadata' => false,
    // No calls home from a test run.
    'admin.checkforupdates' => false,
    'trusted.url.domains' => [],
    'enable.http_post' => false,
    'assertion.allowed_clock_skew' => 180,

    'debug' => [
        'saml' => false,
        'backtraces' => true,
        'validatexml' => false,
    ],
    'showerrors' => true,
    'errorreporting' => false,
    'production' => true,

    // php -S passes stderr through; the Python side captures it in the IdP's log file.
    'logging.level' => SimpleSAML\Logger::INFO,
    'logging.handler' => 'stderr',
    'logging.processname' => 'simplesamlphp',
    'statistics.out' => [],

    'enable.saml20-idp' => true,
    'enable.shib13-idp' => false,
    'enable.adfs-idp' => false,

    'module.enable' => [
        'exampleauth' => true,
        'core' => true,
        'saml' => true,
        'admin' => true,
    ],

    // Plain http on loopback: a Secure cookie would never come back.
    'session.duration' => 8 * 60 * 60,
    'session.datastore.timeout' => 4 * 60 * 60,
    'session.state.timeout' => 60 * 60,
    'session.cookie.name' => 'SimpleSAMLSessionID',
    'session.cookie.lifetime' => 0,
    'session.cookie.path' => '/',
    'session.cookie.domain' => null,
    'session.cookie.secure' => false,
    'session.cookie.samesite' => 'Lax',
    'session.phpsession.cookiename' => 'SimpleSAML',
    'session.phpsession.savepath' => $peer['state_dir'] . '/sessions',
    'session.phpsession.httponly' => true,
    'session.authtoken.cookiename' => 'SimpleSAMLAuthToken',
    'session.rememberme.enable' => false,

    'language.default' => 'en',
    'language.available' => ['en'],
    'language.cookie.secure' => false,
    'language.cookie.samesite' => 'Lax',

    'theme.use' => 'default',
    'template.auto_reload' => false,

    'authproc.idp' => [],
    'authproc.sp' => [],

    'metadata.sources' => [
        ['type' => 'flatfile'],
    ],
    'metadata.sign.enable' => false,

    'store.type' => 'phpsession',
];
