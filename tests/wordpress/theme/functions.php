<?php
// What every default theme asks for: the <link rel="alternate"> feed links in <head>.
add_theme_support('automatic-feed-links');
