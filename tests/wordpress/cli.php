<?php
// Runs PHP against a test site as WP-CLI would: `php cli.php FILE` loads WordPress from
// Debian's package, includes FILE (the harness writes it), and prints what FILE returns
// as JSON. The site is chosen by the same environment variables Apache passes.
$_SERVER['HTTP_HOST'] = parse_url(getenv('GAZETTE_WP_URL'), PHP_URL_HOST) . ':' . parse_url(getenv('GAZETTE_WP_URL'), PHP_URL_PORT);
$_SERVER['WORDPRESS_CONFIG'] = 'gazettetest';
$_SERVER['REQUEST_METHOD'] = 'GET';
if (getenv('GAZETTE_WP_INSTALLING')) {
    define('WP_INSTALLING', true);
}
require '/usr/share/wordpress/wp-load.php';
$result = include $argv[1];
echo json_encode($result);
