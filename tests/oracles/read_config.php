<?php
/**
 * Test oracle: read a Matomo config.ini.php the way Matomo does and print the
 * resulting settings as JSON, so tests can compare what Matomo will see with
 * what matomo-nomad meant to write.
 *
 * Usage: php read_config.php PATH/TO/config.ini.php
 *
 * Reimplements (not copies) the two steps Matomo applies to a config file:
 *
 * 1. matomo-org/component-ini, src/IniReader.php (readString, the native
 *    branch, and decode): parse_ini_string() with sections in
 *    INI_SCANNER_NORMAL mode, then a second INI_SCANNER_RAW parse used only
 *    to tell a bare true/yes/on, false/no/off and null apart from the "1" and
 *    "" the normal scanner turns them into; then numeric strings that survive
 *    a round trip through a number become int or float.
 * 2. matomo-org/matomo, core/Config/IniFileChain.php (reload): decodeValues()
 *    runs html_entity_decode($v, ENT_COMPAT, 'UTF-8') over every string, and
 *    reload() calls it twice on the same data (once on the reader's result,
 *    once more on the stored copy), so entities are decoded twice. A literal
 *    "&" must therefore be written "&amp;amp;".
 *
 * Output: {"section": {"key": value, "list": [...]}, ...} on stdout.
 * A syntax error prints PHP's message on stderr and exits 1.
 */

declare(strict_types=1);

/** Warnings raised while parsing; Matomo silences them with @ and reads error_get_last(). */
$warnings = [];
set_error_handler(function (int $errno, string $message) use (&$warnings): bool {
    $warnings[] = $message;
    return true;
});

function fail(string $message): never
{
    fwrite(STDERR, $message . "\n");
    exit(1);
}

/**
 * IniReader::decode: restore the types the normal scanner loses. $raw is the
 * same node from the INI_SCANNER_RAW parse (or $value itself where the raw
 * parse failed or has no such key).
 */
function decodeTypes(mixed $value, mixed $raw): mixed
{
    if (is_array($value)) {
        foreach ($value as $key => $item) {
            $rawItem = is_array($raw) && array_key_exists($key, $raw) ? $raw[$key] : $item;
            $value[$key] = decodeTypes($item, $rawItem);
        }
        return $value;
    }
    if (!is_string($value)) {
        return $value;
    }
    // The normal scanner reads bare true/yes/on as "1" and false/no/off/null
    // as ""; only the raw text shows which keyword it was. Quoted "on" stays
    // the string "on" because the normal scanner leaves quoted text alone.
    if ($value === '1' && in_array($raw, ['true', 'yes', 'on'], true)) {
        return true;
    }
    if ($value === '' && in_array($raw, ['false', 'no', 'off'], true)) {
        return false;
    }
    if ($value === '' && $raw === 'null') {
        return null;
    }
    // Only when the number prints back as the same text: "1" -> 1 and
    // "1.5" -> 1.5, but "1.0", "007" and "1e3" stay strings.
    if (is_numeric($value) && (string) ($value + 0) === $value) {
        return $value + 0;
    }
    return $value;
}

/** IniFileChain::decodeValues: html_entity_decode every string, keep other types. */
function decodeEntities(mixed $value): mixed
{
    if (is_array($value)) {
        return array_map('decodeEntities', $value);
    }
    return is_string($value) ? html_entity_decode($value, ENT_COMPAT, 'UTF-8') : $value;
}

/** Sections are always JSON objects, even an empty one; lists stay lists. */
function toJsonShape(array $settings): array|stdClass
{
    $out = [];
    foreach ($settings as $name => $section) {
        $out[$name] = is_array($section) ? (object) $section : $section;
    }
    return $out === [] ? new stdClass() : $out;
}

if ($argc !== 2) {
    fail('usage: php read_config.php CONFIG_INI_PHP');
}
$ini = file_get_contents($argv[1]);
if ($ini === false) {
    fail("cannot read {$argv[1]}");
}
// IniReader::readString appends a newline before parsing (a PHP 5.3.3 workaround).
$ini .= "\n";

$parsed = parse_ini_string($ini, true);
if ($parsed === false) {
    fail('Syntax error in INI configuration: ' . (end($warnings) ?: 'parse_ini_string() returned false'));
}
$raw = parse_ini_string($ini, true, INI_SCANNER_RAW);
$settings = decodeTypes($parsed, $raw === false ? $parsed : $raw);

$settings = decodeEntities(decodeEntities($settings));

try {
    echo json_encode(
        toJsonShape($settings),
        JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES | JSON_PRESERVE_ZERO_FRACTION | JSON_THROW_ON_ERROR
    ), "\n";
} catch (JsonException $e) {
    fail('cannot encode settings as JSON: ' . $e->getMessage());
}
