<?php

/*
 * The service providers the test IdP trusts; they come from peer.json. See ../config.php.
 */

$peer = json_decode(
    file_get_contents(dirname(__DIR__) . '/peer.json'),
    true,
    512,
    JSON_THROW_ON_ERROR
);

foreach ($peer['sps'] as $sp) {
    $entry = [
        'AssertionConsumerService' => [
            [
                'index' => 0,
                'Binding' => 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST',
                'Location' => $sp['acs_url'],
            ],
        ],
    ];
    if ($sp['slo_url'] !== null) {
        $entry['SingleLogoutService'] = [
            [
                'Binding' => 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect',
                'Location' => $sp['slo_url'],
            ],
        ];
    }
    if ($sp['cert'] !== null) {
        // Base64 DER. With a certificate, unsigned AuthnRequests are refused.
        $entry['keys'] = [
            [
                'type' => 'X509Certificate',
                'signing' => true,
                'encryption' => false,
                'X509Certificate' => $sp['cert'],
            ],
        ];
        $entry['validate.authnrequest'] = true;
        $entry['validate.logout'] = true;
    }
    $metadata[$sp['entity_id']] = $entry;
}
