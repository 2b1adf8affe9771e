<?php

/*
 * The hosted IdP of Gatehouse's end-to-end SSO tests; its settings come from peer.json.
 * See ../config.php.
 */

$peer = json_decode(
    file_get_contents(dirname(__DIR__) . '/peer.json'),
    true,
    512,
    JSON_THROW_ON_ERROR
);

$idp = [
    'host' => '__DEFAULT__',
    // Relative to certdir.
    'privatekey' => 'idp.key',
    'certificate' => 'idp.crt',
    'auth' => 'test-userpass',

    'signature.algorithm' => $peer['signature_algorithm'],
    'saml20.sign.assertion' => $peer['sign_assertion'],
    'saml20.sign.response' => $peer['sign_response'],

    'NameIDFormat' => $peer['name_id_format'],
    'attributes.NameFormat' => $peer['attribute_name_format'],
    'assertion.lifetime' => 300,

    'authproc' => [],
];

if ($peer['name_id_attribute'] !== null) {
    // The NameID value is this attribute's first value (emailAddress, persistent, ...).
    $idp['simplesaml.nameidattribute'] = $peer['name_id_attribute'];
}

if ($peer['authn_context'] !== null) {
    $idp['authproc'][10] = [
        'class' => 'saml:AuthnContextClassRef',
        'AuthnContextClassRef' => $peer['authn_context'],
    ];
}

$metadata[$peer['entity_id']] = $idp;
