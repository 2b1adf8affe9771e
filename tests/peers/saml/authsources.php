<?php

/*
 * Authentication sources for Gatehouse's end-to-end SSO tests: one exampleauth:UserPass source
 * whose users (login, password, attributes) come from peer.json. See config.php.
 */

$peer = json_decode(file_get_contents(__DIR__ . '/peer.json'), true, 512, JSON_THROW_ON_ERROR);

$users = ['exampleauth:UserPass'];
foreach ($peer['users'] as $user) {
    // exampleauth keys users as "<login>:<password>"; the login must not contain ':'.
    $users[$user['login'] . ':' . $user['password']] = $user['attributes'];
}

$config = [
    'admin' => ['core:AdminPassword'],
    'test-userpass' => $users,
];
