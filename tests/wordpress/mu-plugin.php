<?php
/*
 * Gazette test switches, set per site with update_option() by the harness, in the shapes
 * hardened sites use in the wild:
 * - gazette_rest = "401": the REST API refused (rest_authentication_errors, as the
 *   "Disable REST API" plugins do); "404": every route removed (rest_endpoints filter).
 * - gazette_no_users = 1: /wp/v2/users removed (the common anti-enumeration snippet).
 * Mail is swallowed: the test site never sends any.
 */
add_filter('pre_wp_mail', '__return_true');

add_filter('rest_authentication_errors', function ($result) {
    if (get_option('gazette_rest') === '401') {
        return new WP_Error('rest_not_logged_in', 'You are not currently logged in.', array('status' => 401));
    }
    return $result;
});

add_filter('rest_endpoints', function ($endpoints) {
    if (get_option('gazette_rest') === '404') {
        return array();
    }
    if (get_option('gazette_no_users')) {
        foreach (array_keys($endpoints) as $route) {
            if (strpos($route, '/wp/v2/users') === 0) {
                unset($endpoints[$route]);
            }
        }
    }
    return $endpoints;
});
