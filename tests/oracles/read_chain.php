<?php
/**
 * Test oracle: the settings Matomo ends up with from its chain of INI files, printed as
 * JSON, so tests can check what a role really runs with once the image's
 * config/common.config.ini.php and the job's config.ini.php are combined.
 *
 * Usage: php read_chain.php GLOBAL_INI_PHP COMMON_CONFIG_INI_PHP CONFIG_INI_PHP
 *
 * Each file is read by read_config.php (run as its own process: it is a script), which
 * reads one file as Matomo does (component-ini's IniReader, then the double
 * html_entity_decode). A file that does not exist counts as empty, as in Matomo
 * (IniFileChain::reload reads only readable files; an empty one is skipped).
 *
 * The merge reimplements (does not copy) matomo-org/matomo core/Config/IniFileChain.php
 * at 5.1.2:
 *
 * 1. getMergedDefaultSettings (lines 333-355): the default files, global.ini.php then
 *    common.config.ini.php, merged section by section; a section already present is
 *    merged with array_merge_recursive_distinct (443-454): every key of the later file
 *    overwrites the same key, nested arrays recursively. A list is an array with keys
 *    0..n-1, so lists merge BY INDEX: a shorter list in common.config.ini.php leaves
 *    global.ini.php's entries past its end in place.
 * 2. mergeFileSettings (315-331): the user file, config.ini.php, section by section
 *    with array_merge: a key there replaces the merged value whole, lists included.
 *
 * Output: {"section": {"key": value, "list": [...]}, ...} on stdout. A file PHP cannot
 * parse prints read_config.php's message on stderr and exits 1.
 */

declare(strict_types=1);

function fail(string $message): void
{
    fwrite(STDERR, $message . "\n");
    exit(1);
}

/** One file as Matomo reads it, or null when it does not exist. */
function readSettings(string $path): ?array
{
    if (!file_exists($path)) {
        return null;
    }
    $command = [PHP_BINARY, '-d', 'display_errors=stderr', __DIR__ . '/read_config.php', $path];
    $process = proc_open($command, [1 => ['pipe', 'w'], 2 => ['pipe', 'w']], $pipes);
    if (!is_resource($process)) {
        fail("cannot run read_config.php on $path");
    }
    $out = stream_get_contents($pipes[1]);
    $err = stream_get_contents($pipes[2]);
    fclose($pipes[1]);
    fclose($pipes[2]);
    if (proc_close($process) !== 0) {
        fail("$path: " . trim((string) $err));
    }
    return json_decode((string) $out, true, 512, JSON_THROW_ON_ERROR);
}

/** IniFileChain::array_merge_recursive_distinct: $b's keys overwrite $a's, arrays recursively. */
function mergeRecursiveDistinct(array $a, array $b): array
{
    $merged = $a;
    foreach ($b as $key => $value) {
        if (is_array($value) && isset($merged[$key]) && is_array($merged[$key])) {
            $merged[$key] = mergeRecursiveDistinct($merged[$key], $value);
        } else {
            $merged[$key] = $value;
        }
    }
    return $merged;
}

if ($argc !== 4) {
    fail('usage: php read_chain.php GLOBAL_INI_PHP COMMON_CONFIG_INI_PHP CONFIG_INI_PHP');
}

$merged = [];
foreach ([$argv[1], $argv[2]] as $defaults) {
    $settings = readSettings($defaults);
    if (empty($settings)) {
        continue;
    }
    foreach ($settings as $name => $section) {
        $merged[$name] = isset($merged[$name]) ? mergeRecursiveDistinct($merged[$name], $section) : $section;
    }
}
foreach (readSettings($argv[3]) ?: [] as $name => $section) {
    $merged[$name] = isset($merged[$name]) ? array_merge($merged[$name], $section) : $section;
}

$out = [];
foreach ($merged as $name => $section) {
    $out[$name] = is_array($section) ? (object) $section : $section;
}
echo json_encode(
    $out === [] ? new stdClass() : $out,
    JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES | JSON_PRESERVE_ZERO_FRACTION | JSON_THROW_ON_ERROR
), "\n";
