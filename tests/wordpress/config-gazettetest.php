<?php
// Gazette's test sites: one WordPress install per test, chosen by environment
// variables that the test harness sets (Apache's SetEnv, or the PHP CLI's environment).
// Debian's /usr/share/wordpress/wp-config.php loads this file when WORDPRESS_CONFIG is
// "gazettetest"; the harness copies it to /etc/wordpress/config-gazettetest.php.
$gazette_env = function ($name) {
    return isset($_SERVER[$name]) ? $_SERVER[$name] : getenv($name);
};
define('DB_NAME', 'wordpress');
define('DB_USER', 'wp');
define('DB_PASSWORD', 'wp');
define('DB_HOST', 'localhost:' . $gazette_env('GAZETTE_WP_SOCKET'));
define('WP_CONTENT_DIR', $gazette_env('GAZETTE_WP_CONTENT'));
define('WP_HOME', $gazette_env('GAZETTE_WP_URL'));
define('WP_SITEURL', $gazette_env('GAZETTE_WP_URL'));
// Never reach the network from inside WordPress.
define('WP_HTTP_BLOCK_EXTERNAL', true);
define('DISABLE_WP_CRON', true);
define('AUTOMATIC_UPDATER_DISABLED', true);
define('WP_DEBUG', false);
$table_prefix = 'wp_';
