<?php
/**
 * matomo-nomad's setup script: brings the database to what this image's Matomo needs.
 *
 * Baked into the image at /usr/local/lib/matomo-nomad/setup.php and run by the setup
 * job (a one-shot Nomad batch job) as `php /usr/local/lib/matomo-nomad/setup.php`, in a
 * container of the deployment's image whose config.ini.php is mounted read-only.
 * Static PHP (no template), for PHP 7.4 to 8.4. It never writes a config file.
 *
 * Steps, each guarded so that a second run changes nothing:
 *   1. bootstrap Matomo as its `console` does;
 *   2. an empty database: create Matomo's tables (needs the install inputs below);
 *   3. install every loaded plugin that has no recorded version (before step 4);
 *   4. refuse an update whose migration would have to write [database] collation,
 *      then run the updater (core, plugins, dimensions);
 *   5. create a superuser if there is none, and a website if there is none.
 *
 * Environment:
 *   MATOMO_DIR                           Matomo's directory (default /var/www/html)
 *   MATOMO_NOMAD_SUPERUSER_LOGIN         install.superuser_login
 *   MATOMO_NOMAD_SUPERUSER_EMAIL         install.superuser_email
 *   MATOMO_NOMAD_SUPERUSER_PASSWORD_FILE file holding the password, exact bytes
 *                                        (default /secrets/superuser_password)
 *   MATOMO_NOMAD_SITE_NAME               install.site_name
 *   MATOMO_NOMAD_SITE_URL                install.site_url
 *   MATOMO_NOMAD_SITE_TIMEZONE           install.timezone
 *   MATOMO_NOMAD_SITE_CURRENCY           install.currency
 *   MATOMO_NOMAD_DEBUG=1                 print stack traces and PHP's own error output
 * The superuser and site inputs are read only when there is something to create.
 *
 * Output: one line per step on stdout, "setup: ...", then "setup: done".
 * Exit codes: 0 done; 1 failure (one line on stderr: "setup: <step>: <message>");
 *             3 [database] collation must be set first; 4 install inputs missing.
 *
 * The move-queues mode (matomo-nomad: move-queues), `php setup.php --move-queues=OLD:NEW`:
 * instead of the steps above, move the tracking requests waiting in QueuedTracking's
 * queues NEW..OLD-1 into queues 0..NEW-1, as saving a lower "number of queue workers" in
 * the plugin's settings page does. `matomo-nomad run` runs it once ingestion writes only
 * to the NEW queues and no queue processor runs (see moveQueues()). Any other argument
 * is refused (exit 1), so a mode this script does not know never runs a plain setup.
 *
 * Matomo references are to matomo-org/matomo at tag 5.1.2 unless another tag is named.
 */

namespace MatomoNomad\Setup;

const EXIT_FAILURE = 1;
const EXIT_COLLATION_NEEDED = 3;
const EXIT_INPUTS_MISSING = 4;

const DEFAULT_MATOMO_DIR = '/var/www/html';
const DEFAULT_PASSWORD_FILE = '/secrets/superuser_password';

/**
 * Core migrations that store [database] collation in config.ini.php when it is empty:
 * core/Updates/5.1.2-rc1.php 36-50 and (5.2.0-b5) core/Updates/5.2.0-b2.php 37-51, both
 * through Migration\Config\Set::exec(), which calls Config::forceSave()
 * (core/Updater/Migration/Config/Set.php 51-56).
 */
const COLLATION_MIGRATIONS = ['5.1.2-rc1', '5.2.0-b2'];

/** The install inputs: environment variable => what to set in the deployment file. */
const INPUT_FIELDS = [
    'MATOMO_NOMAD_SUPERUSER_LOGIN' => 'install.superuser_login',
    'MATOMO_NOMAD_SUPERUSER_EMAIL' => 'install.superuser_email',
    'MATOMO_NOMAD_SUPERUSER_PASSWORD_FILE' => 'the superuser_password secret (secrets.superuser_password_key)',
    'MATOMO_NOMAD_SITE_NAME' => 'install.site_name',
    'MATOMO_NOMAD_SITE_URL' => 'install.site_url',
    'MATOMO_NOMAD_SITE_TIMEZONE' => 'install.timezone',
    'MATOMO_NOMAD_SITE_CURRENCY' => 'install.currency',
];
const SUPERUSER_INPUTS = ['MATOMO_NOMAD_SUPERUSER_LOGIN', 'MATOMO_NOMAD_SUPERUSER_EMAIL', 'MATOMO_NOMAD_SUPERUSER_PASSWORD_FILE'];
const SITE_INPUTS = ['MATOMO_NOMAD_SITE_NAME', 'MATOMO_NOMAD_SITE_URL', 'MATOMO_NOMAD_SITE_TIMEZONE', 'MATOMO_NOMAD_SITE_CURRENCY'];

/** A deliberate stop: the lines go to stderr, the code is the exit status. */
final class Stop extends \Exception
{
    /** @var string[] */
    public $lines;
    /** @var int */
    public $exitCode;

    public function __construct(int $exitCode, string ...$lines)
    {
        parent::__construct(implode(' ', $lines));
        $this->exitCode = $exitCode;
        $this->lines = $lines;
    }
}

/** The step being run, for error lines. */
final class Run
{
    /** @var string */
    public static $step = 'bootstrap';
    /** @var bool */
    public static $finished = false;
}

function say(string $line): void
{
    fwrite(STDOUT, 'setup: ' . oneLine($line) . "\n");
}

function complain(string $line): void
{
    fwrite(STDERR, 'setup: ' . oneLine($line) . "\n");
}

/** Messages from Matomo may span lines (core/Updater.php 595-600): keep ours to one. */
function oneLine(string $text): string
{
    return trim(preg_replace('/\s*[\r\n]+\s*/', ' ', $text));
}

function isDebug(): bool
{
    return getenv('MATOMO_NOMAD_DEBUG') === '1';
}

function env(string $name): string
{
    $value = getenv($name);
    return $value === false ? '' : $value;
}

// ---------------------------------------------------------------------------------
// The steps, in order.

function main(array $argv): int
{
    // PHP's own error output would print a fatal error twice (display and log) and
    // with paths; the shutdown handler below prints one line instead.
    if (!isDebug()) {
        ini_set('display_errors', '0');
        ini_set('log_errors', '0');
    } else {
        ini_set('display_errors', 'stderr');
    }
    register_shutdown_function(__NAMESPACE__ . '\onShutdown');

    try {
        Run::$step = 'arguments';
        $move = parseArguments(array_slice($argv, 1));

        Run::$step = 'bootstrap';
        bootstrap();

        if ($move !== null) {
            Run::$step = 'move-queues';
            \Piwik\Access::doAsSuperUser(function () use ($move) {
                moveQueues($move[0], $move[1]);
            });
            say('done');
            Run::$finished = true;
            return 0;
        }

        // Access.php 658-688: every API below checks for superuser access.
        \Piwik\Access::doAsSuperUser(function () {
            // First: an older image must change nothing in a newer database, not even
            // install its plugins (getCurrentComponentVersion is false without tables,
            // core/Updater.php 172-188, so this is safe on an empty database too).
            Run::$step = 'update';
            refuseDowngrade();

            Run::$step = 'install';
            installIfEmpty();

            Run::$step = 'plugins';
            installUnrecordedPlugins();

            Run::$step = 'update';
            refuseCollationMigration();
            runUpdater();

            Run::$step = 'superuser';
            ensureSuperUser();

            Run::$step = 'site';
            ensureSite();
        });
    } catch (Stop $stop) {
        foreach ($stop->lines as $line) {
            complain($line);
        }
        Run::$finished = true;
        return $stop->exitCode;
    } catch (\Throwable $e) {
        complain(Run::$step . ': ' . $e->getMessage());
        if (isDebug()) {
            fwrite(STDERR, (string) $e . "\n");
        }
        Run::$finished = true;
        return EXIT_FAILURE;
    }

    say('done');
    Run::$finished = true;
    return 0;
}

/** A fatal error (out of memory, a missing class) ends PHP without an exception. */
function onShutdown(): void
{
    if (Run::$finished) {
        return;
    }
    $error = error_get_last();
    $fatal = E_ERROR | E_PARSE | E_CORE_ERROR | E_COMPILE_ERROR | E_USER_ERROR | E_RECOVERABLE_ERROR;
    if ($error !== null && ($error['type'] & $fatal)) {
        complain(Run::$step . ': PHP fatal error: ' . $error['message']);
        exit(EXIT_FAILURE);
    }
}

/**
 * Step 1: Matomo's environment, as `console` builds it (console 6-27; core/Console.php
 * 257-262 and 287-291), with one difference: the DI container's Piwik\Config never
 * writes config.ini.php (see readOnlyConfig()).
 *
 * Not needed in the CLI, from the source:
 * - PIWIK_ENABLE_SESSION_START is read only by Session::start() (core/Session.php 38-46),
 *   which only web requests reach (FrontController::init, Login);
 * - PIWIK_ENABLE_DISPATCH is read by FrontController (253, 796), by SettingsPiwik::
 *   getPiwikUrl() (187, where CLI mode already returns the stored URL) and by the web
 *   installer's dispatch (plugins/Installation/Installation.php 133-135): none run here;
 * - no $_SERVER field: with no HTTP_HOST, Config::getLocalConfigPath() picks the default
 *   config/config.ini.php (core/Config.php 140-151, 210-225); setting one would make it
 *   look for a per-host config file instead. `console` sets $_SERVER['argv'] only under
 *   php-cgi (core/Console.php 221-238);
 * - no FrontController::init(): it needs the option table (the reference's finding) and
 *   is for web requests; setUpSafeMode() (console 29) renders an HTML page on a fatal
 *   error, which onShutdown() replaces here; initAuth() (core/Console.php 318-330) is for
 *   token-authenticated commands, and doAsSuperUser() needs no Auth object.
 */
function bootstrap(): void
{
    $root = rtrim(env('MATOMO_DIR') ?: DEFAULT_MATOMO_DIR, '/');
    if (!is_file($root . '/core/bootstrap.php')) {
        throw new \RuntimeException("no Matomo in '" . ($root ?: '/') . "' (core/bootstrap.php is missing; MATOMO_DIR names the directory)");
    }

    define('PIWIK_DOCUMENT_ROOT', $root);
    if (file_exists(PIWIK_DOCUMENT_ROOT . '/bootstrap.php')) {
        require_once PIWIK_DOCUMENT_ROOT . '/bootstrap.php'; // console 10-12: a site's own hook
    }
    if (!defined('PIWIK_INCLUDE_PATH')) {
        define('PIWIK_INCLUDE_PATH', PIWIK_DOCUMENT_ROOT);
    }
    require_once PIWIK_INCLUDE_PATH . '/core/bootstrap.php';

    // console 24-27: PHP warnings and notices go to Matomo's logger rather than stdout.
    // (Its ExceptionHandler is not installed: main() catches everything.)
    \Piwik\ErrorHandler::registerErrorHandler();

    // Environment::__construct($environment, array $definitions) keeps the definitions
    // and ContainerFactory::create() adds them last, after global.php, plugin configs,
    // environment configs and config/config.php (core/Application/Environment.php 78-82,
    // 130-143; core/Container/ContainerFactory.php 63-108): this one wins.
    $environment = new \Piwik\Application\Environment('cli', [
        'Piwik\Config' => function (\Psr\Container\ContainerInterface $container) {
            return readOnlyConfig($container->get('Piwik\Application\Kernel\GlobalSettingsProvider'));
        },
    ]);
    $environment->init();

    // core/Console.php 287-291 (initPlugins): translations make Matomo's exception
    // messages readable text rather than translation keys.
    $manager = \Piwik\Plugin\Manager::getInstance();
    $manager->loadActivatedPlugins();
    $manager->loadPluginTranslations();
}

/**
 * Piwik\Config has no DI definition (none in config/global.php: PHP-DI autowires
 * `new Config(GlobalSettingsProvider)`, core/Config.php 65-73), and every
 * Matomo caller gets it from the container via Config::getInstance(); the only write is
 * forceSave() -> writeConfig() (core/Config.php 398-443; the same in 4.16.1 and
 * 5.2.0-b5). Matomo's own tests replace it the same way (config/environment/test.php
 * 51-61). So a subclass that overrides both is all it takes: Matomo's in-memory changes
 * stay for the rest of this run, as after a successful save, and the file is untouched.
 *
 * Why not write: QueuedTracking's install step (plugin 5.1.1 Configuration.php 24-43)
 * always calls forceSave(); as www-data that throws "not writable", as root it would
 * rewrite the file without the deployment's [QueuedTracking] keys.
 *
 * The class is anonymous so that it is declared only now, once Matomo's autoloader
 * can find its parent.
 */
function readOnlyConfig($settingsProvider): \Piwik\Config
{
    return new class ($settingsProvider) extends \Piwik\Config {
        public function forceSave()
        {
            $this->refuseToWrite();
        }

        protected function writeConfig()
        {
            $this->refuseToWrite();
        }

        private function refuseToWrite(): void
        {
            try {
                // $settings: the GlobalSettingsProvider (core/Config.php 60-73), whose chain
                // holds the merged settings Matomo changed in memory.
                $sections = sectionsDifferingFromFiles($this, $this->settings->getIniFileChain()->getAll());
                $what = $sections ? 'sections that differ: ' . implode(', ', $sections) : 'no section differs';
            } catch (\Throwable $e) {
                $what = 'could not compare it with the files';
            }
            say("Matomo wanted to save config.ini.php ($what): not written, the config is read-only and managed by matomo-nomad");
            // Back to what the files say (core/Config.php 308): QueuedTracking's install
            // replaced its whole section in memory (Configuration.php 28-42, 5.1.1), and
            // its settings are read from the in-memory config on every call
            // (core/Settings/Plugin/SystemSetting.php 68-90): the rest of this run must
            // see the deployment's [QueuedTracking], as every role will.
            $this->reload();
        }
    };
}

/**
 * Names of the sections whose in-memory values differ from what the config files say
 * (never their values). The files are read again through a fresh IniFileChain
 * (core/Config/IniFileChain.php 62-65, 116-119), the same merge Matomo does.
 *
 * @return string[]
 */
function sectionsDifferingFromFiles(\Piwik\Config $config, array $inMemory): array
{
    $files = new \Piwik\Config\IniFileChain([$config->getGlobalPath(), $config->getCommonPath()], $config->getLocalPath());
    $onDisk = $files->getAll();

    $differing = [];
    foreach (array_unique(array_merge(array_keys($inMemory), array_keys($onDisk))) as $name) {
        $a = array_key_exists($name, $inMemory) ? $inMemory[$name] : [];
        $b = array_key_exists($name, $onDisk) ? $onDisk[$name] : [];
        if ($a !== $b) {
            $differing[] = (string) $name;
        }
    }
    sort($differing);
    return $differing;
}

/**
 * Step 2: an empty database gets Matomo's tables, as the web installer creates them
 * (plugins/Installation/Controller.php 96, 217-219). DbHelper::getTablesInstalled()
 * lists only Matomo's tables with this prefix (core/Db/Schema/Mysql.php 453-497).
 * The version_core option is recorded by the updater in step 4 (core/Updater.php
 * 419-424), as the installer records it after its own update (Controller.php 221-223).
 *
 * No Option cache needs clearing afterwards: Option caches only values it has read
 * (core/Option.php 177-190, 282-297), which is impossible before the option table
 * exists, and Option::set() updates the cache it writes through (215).
 */
function installIfEmpty(): void
{
    $tables = \Piwik\DbHelper::getTablesInstalled();
    if (count($tables) > 0) {
        say('database has ' . count($tables) . ' Matomo tables: nothing to install');
        return;
    }

    // Everything the later steps will need, checked before anything is created.
    requireInputs('the database has no Matomo tables', array_keys(INPUT_FIELDS));
    superuserPassword();

    say('database has 0 tables: installing');
    \Piwik\Filesystem::deleteAllCacheOnUpdate();
    \Piwik\DbHelper::createTables();
    \Piwik\DbHelper::createAnonymousUser();
    \Piwik\DbHelper::recordInstallVersion();
}

/**
 * Step 3: plugins whose version was never recorded are installed first, as Matomo's own
 * Plugin\Manager::installPluginIfNecessary() does (core/Plugin/Manager.php 1401-1431)
 * minus its config save: install(), then record the code's version with $isNew = true
 * (core/Updater.php 97-115), which also makes the updater skip the plugin's old
 * Updates/*.php. Run before the updater: it would otherwise run those migrations against
 * tables the install step has not created yet, and mark plugins without update files as
 * current (core/Updater.php 385-391), so their tables would never be created.
 *
 * The loaded plugins are read only now: DbHelper::getTablesInstalled() reloads them
 * (core/Db/Schema/Mysql.php 478-483).
 *
 * Not done, unlike installPluginIfNecessary(): adding the plugin to PluginsInstalled[]
 * and saving the config (the image's common.config.ini.php lists it already), and the
 * PluginManager.pluginInstalled event, whose listeners rebuild matomo.js in this
 * one-shot container only (plugins/CustomJsTracker/CustomJsTracker.php 24) and clear
 * a marketplace trial request (plugins/Marketplace/Marketplace.php 33).
 */
function installUnrecordedPlugins(): void
{
    $manager = \Piwik\Plugin\Manager::getInstance();
    $updater = new \Piwik\Updater();
    $plugins = $manager->getLoadedPlugins();

    $installed = 0;
    foreach ($plugins as $name => $plugin) {
        if ($updater->getCurrentComponentVersion($name) !== false) {
            continue;
        }
        say("plugin $name has no recorded version: installing");
        try {
            $plugin->install();
        } catch (\Throwable $e) {
            // as Manager::executePluginInstall() names the plugin (Manager.php 1335-1342)
            throw new \RuntimeException("plugin $name: " . $e->getMessage(), 0, $e);
        }
        $updater->markComponentSuccessfullyUpdated($name, $plugin->getVersion(), true);
        $installed++;
    }
    if ($installed === 0) {
        say('all ' . count($plugins) . ' loaded plugins have a recorded version: nothing to install');
    }

    // A loaded plugin missing from [PluginsInstalled] is installed again by the first web
    // request, which saves config.ini.php (core/FrontController.php 393-400, Manager.php
    // 1401-1431) and fails on a read-only file; the updater skips it too (Updater.php 545).
    foreach (array_keys($plugins) as $name) {
        if (!$manager->isPluginInstalled($name)) {
            say("warning: plugin $name is active but not listed in PluginsInstalled[] of the image's config: Matomo's web requests will try to install it and save config.ini.php");
        }
    }
}

/**
 * Matomo never downgrades: the updater ignores a database newer than the code
 * (core/Updater.php 432-433) and every web request then fails
 * (core/FrontController.php 388, 678-701). Say so here instead.
 */
function refuseDowngrade(): void
{
    $recorded = (new \Piwik\Updater())->getCurrentComponentVersion('core');
    $code = \Piwik\Version::VERSION;
    if (!empty($recorded) && version_compare((string) $recorded, $code, '>')) {
        throw new Stop(EXIT_FAILURE, "update: the database is at Matomo $recorded, newer than this image's Matomo $code: Matomo cannot downgrade; run an image of Matomo $recorded or newer");
    }
}

/**
 * Step 4, first half: with an empty [database] collation, the migrations named in
 * COLLATION_MIGRATIONS detect a collation and store it with Config::forceSave(), which
 * the read-only config cannot do (here it would be dropped silently). Such a migration
 * runs when the recorded core version is below it and the code is at or above it: the
 * updater's own choice of update files (core/Updater.php 372-381). Stop before any
 * migration and name the value to set.
 */
function refuseCollationMigration(): void
{
    $database = \Piwik\Config::getInstance()->database;
    if (!empty($database['collation'])) {
        return; // the migrations' own condition (5.1.2-rc1.php 36-40)
    }
    $recorded = (new \Piwik\Updater())->getCurrentComponentVersion('core');
    if (empty($recorded)) {
        return; // a new database: the updater records the code's version (Updater.php 419-424)
    }
    $code = \Piwik\Version::VERSION;
    foreach (COLLATION_MIGRATIONS as $migration) {
        if (version_compare((string) $recorded, $migration, '<') && version_compare($migration, $code, '<=')) {
            $collation = detectCollationAsMatomoWould();
            if ($collation === null) {
                say("database.collation is empty and the update crosses Matomo $migration, which finds no collation to store: proceeding");
                return;
            }
            throw new Stop(
                EXIT_COLLATION_NEEDED,
                "set database.collation = \"$collation\" in the deployment file (Matomo $migration stores it in config.ini.php, which is read-only here)"
            );
        }
    }
}

/**
 * The value those migrations would store, found with their queries
 * (core/Updates/5.1.2-rc1.php 60-107; 5.2.0-b5 core/Updates/5.2.0-b2.php 61-103 does the
 * same through MySQLMetadataProvider and ArchiveTableCreator::getLatestArchiveTableInstalled):
 * the user table's collation if the connection uses it too, otherwise if the newest
 * numeric archive table has it; null (nothing stored) otherwise or on any error.
 */
function detectCollationAsMatomoWould(): ?string
{
    try {
        $db = \Piwik\Db::get();
        $userTable = $db->fetchRow('SHOW TABLE STATUS WHERE Name = ?', [\Piwik\Common::prefixTable('user')]);
        if (empty($userTable['Collation'])) {
            return null;
        }
        $collation = $userTable['Collation'];
        if ($collation === $db->fetchOne('SELECT @@collation_connection')) {
            return $collation;
        }

        $archiveTables = \Piwik\DataAccess\ArchiveTableCreator::getTablesArchivesInstalled(\Piwik\DataAccess\ArchiveTableCreator::NUMERIC_TABLE);
        if (count($archiveTables) === 0) {
            return null;
        }
        rsort($archiveTables); // archive_numeric_YYYY_MM: the newest first
        $archiveTable = $db->fetchRow('SHOW TABLE STATUS WHERE Name = ?', [$archiveTables[0]]);
        if (!empty($archiveTable['Collation']) && $archiveTable['Collation'] === $collation) {
            return $collation;
        }
    } catch (\Exception $e) {
        // the migrations give up the same way ("rely on the system check")
    }
    return null;
}

/**
 * Step 4, second half: the updater, as `core:update` and the installer run it
 * (core/Updater.php 460-564; plugins/Installation/Controller.php 747-770): core first,
 * then plugins and dimension columns. Errors stop with exit 1; warnings are printed.
 */
function runUpdater(): void
{
    $updater = new \Piwik\Updater();
    $code = \Piwik\Version::VERSION;
    $before = $updater->getCurrentComponentVersion('core');

    $components = $updater->getComponentUpdates();
    if (empty($components)) {
        recordCoreVersion($updater);
        say("core $code and all plugins up to date");
        return;
    }

    say('updating ' . describeUpdates($components, $before, $code) . ': running the updater');
    $result = $updater->updateComponents($components);

    foreach ($result['warnings'] ?? [] as $warning) {
        say('warning: ' . $warning);
    }
    $errors = $result['errors'] ?? [];
    if (!empty($result['coreError']) || !empty($errors)) {
        $lines = [];
        foreach ($errors as $error) {
            $lines[] = 'update: ' . oneLine((string) $error);
        }
        if (!$lines) {
            $lines[] = 'update: the core update failed';
        }
        if (!empty($result['deactivatedPlugins'])) {
            $lines[] = 'update: Matomo deactivated (in memory only) ' . implode(', ', $result['deactivatedPlugins']);
        }
        throw new Stop(EXIT_FAILURE, ...$lines);
    }

    recordCoreVersion($updater);
    say("updated: core is at " . $updater->getCurrentComponentVersion('core'));
}

/** version_core must exist afterwards, as the installer records it (Controller.php 223). */
function recordCoreVersion(\Piwik\Updater $updater): void
{
    if (empty($updater->getCurrentComponentVersion('core'))) {
        $updater->markComponentSuccessfullyUpdated('core', \Piwik\Version::VERSION);
    }
}

/** "core 5.1.1 -> 5.1.2 and 3 other components (QueuedTracking, ...)" */
function describeUpdates(array $components, $before, string $code): string
{
    $parts = [];
    if (isset($components['core'])) {
        $parts[] = 'core ' . ($before ?: 'new') . " -> $code";
    }
    $others = array_values(array_diff(array_keys($components), ['core']));
    if ($others) {
        $shown = array_slice($others, 0, 5);
        $more = count($others) > 5 ? ', ...' : '';
        $parts[] = count($others) . ' other component' . (count($others) > 1 ? 's' : '') . ' (' . implode(', ', $shown) . $more . ')';
    }
    return implode(' and ', $parts);
}

/**
 * Step 5a: a superuser, as the web installer creates one (plugins/Installation/
 * Controller.php 266-275, 707-716): UsersManager\API::addUser($userLogin, $password,
 * $email, ...) (plugins/UsersManager/API.php 740), then UserUpdater::
 * setSuperUserAccessWithoutCurrentPassword($userLogin, $hasSuperUserAccess)
 * (plugins/UsersManager/UserUpdater.php 45-56). An existing superuser is left alone
 * (its password is never reset).
 */
function ensureSuperUser(): void
{
    $users = \Piwik\Plugins\UsersManager\API::getInstance();
    $superUsers = $users->getUsersHavingSuperUserAccess();
    if (count($superUsers) > 0) {
        say('a superuser exists: nothing to do');
        return;
    }

    requireInputs('the database has no superuser', SUPERUSER_INPUTS);
    $login = env('MATOMO_NOMAD_SUPERUSER_LOGIN');
    $password = superuserPassword();

    if ($users->userExists($login)) {
        // a previous run stopped between addUser() and setSuperUserAccess()
        say("no superuser; user \"$login\" exists: giving it superuser access (its password is unchanged)");
    } else {
        say("no superuser: creating \"$login\"");
        // addUser() decodes HTML entities in the password before hashing it
        // (API.php 750, Common::unsanitizeInputValue: htmlspecialchars_decode with
        // ENT_QUOTES, core/Common.php 35, 430-433), while the login form checks what is
        // typed, undecoded (plugins/Login/Controller.php 157-159). Encoding the
        // password first makes the stored one the file's exact bytes.
        $users->addUser($login, htmlspecialchars($password, ENT_QUOTES, 'UTF-8'), env('MATOMO_NOMAD_SUPERUSER_EMAIL'));
    }
    (new \Piwik\Plugins\UsersManager\UserUpdater())->setSuperUserAccessWithoutCurrentPassword($login, true);
}

/**
 * Step 5b: the first website, as the web installer adds it (plugins/Installation/
 * Controller.php 320-351): the name sanitized as every name entered in Matomo is stored
 * (Controller.php 344; Common::sanitizeInputValue, core/Common.php 388-421), the URL as
 * given. SitesManager\API::addSite($siteName, $urls, $ecommerce, $siteSearch,
 * $searchKeywordParameters, $searchCategoryParameters, $excludedIps,
 * $excludedQueryParameters, $timezone, $currency, ...) (plugins/SitesManager/API.php
 * 632-651).
 */
function ensureSite(): void
{
    $sites = \Piwik\Plugins\SitesManager\API::getInstance();
    if (count($sites->getAllSitesId()) > 0) {
        say('a website exists: nothing to do');
        return;
    }

    requireInputs('the database has no website', SITE_INPUTS);
    $name = env('MATOMO_NOMAD_SITE_NAME');
    $url = env('MATOMO_NOMAD_SITE_URL');
    say("no website: creating \"$name\" ($url)");
    $idSite = $sites->addSite(
        \Piwik\Common::sanitizeInputValue($name),
        $url,
        null, // ecommerce
        null, // siteSearch
        null, // searchKeywordParameters
        null, // searchCategoryParameters
        null, // excludedIps
        null, // excludedQueryParameters
        env('MATOMO_NOMAD_SITE_TIMEZONE'),
        env('MATOMO_NOMAD_SITE_CURRENCY')
    );
    say("website $idSite created");
}

// ---------------------------------------------------------------------------------
// The move-queues mode.

/**
 * The command line: nothing (a setup) or `--move-queues=OLD:NEW` with OLD > NEW >= 1.
 * Anything else stops with exit 1 before Matomo is touched.
 *
 * @param string[] $arguments
 * @return int[]|null [OLD, NEW], or null for a setup
 */
function parseArguments(array $arguments): ?array
{
    if (count($arguments) === 0) {
        return null;
    }
    if (count($arguments) === 1 && preg_match('/^--move-queues=([1-9][0-9]{0,4}):([1-9][0-9]{0,4})$/', $arguments[0], $m)) {
        $old = (int) $m[1];
        $new = (int) $m[2];
        if ($old > $new) {
            return [$old, $new];
        }
    }
    throw new \InvalidArgumentException('expected no argument, or --move-queues=OLD:NEW with OLD > NEW >= 1; got ' . implode(' ', $arguments));
}

/**
 * Moves the requests waiting in queues $new..$old-1 into queues 0..$new-1 with
 * QueuedTracking's own code, exactly as its settings page does when the number of queue
 * workers is lowered (plugin 5.1.1 SystemSettings.php 394-401: Factory::makeQueueManager(
 * Factory::makeBackend()), setNumberOfAvailableQueues($new), moveSomeQueuesIfNeeded($new,
 * $old)). moveSomeQueuesIfNeeded (Queue/Manager.php 91-104) reads each removed queue in
 * batches, appends every request set to the queue its visitor maps to among the $new
 * remaining ones (addRequestSetToQueues, 133-155, the same mapping as tracking: 215-228),
 * trims the batch and finally deletes the removed queue (106-121).
 *
 * Unlike the settings page, a failure is not swallowed (SystemSettings.php 402-404
 * ignores any exception), and afterwards every removed queue must be empty.
 *
 * It takes no queue lock (Manager.php 106-121): it must run while no processor works a
 * removed queue and nothing writes to one. `matomo-nomad run` runs it after stopping the
 * queue processors and rolling admin and ingestion to the new count.
 */
function moveQueues(int $old, int $new): void
{
    $backend = \Piwik\Plugins\QueuedTracking\Queue\Factory::makeBackend();
    $manager = \Piwik\Plugins\QueuedTracking\Queue\Factory::makeQueueManager($backend);

    $waiting = 0;
    for ($id = $new; $id < $old; $id++) {
        $waiting += $manager->createQueue($id)->getNumberOfRequestSetsInQueue();
    }
    $removed = $new === $old - 1 ? "queue $new" : "queues $new-" . ($old - 1);
    $remaining = $new === 1 ? 'queue 0' : 'queues 0-' . ($new - 1);
    say("$removed: $waiting request set(s) waiting: moving them into $remaining");

    $manager->setNumberOfAvailableQueues($new);
    $manager->moveSomeQueuesIfNeeded($new, $old);

    $left = [];
    for ($id = $new; $id < $old; $id++) {
        $count = $manager->createQueue($id)->getNumberOfRequestSetsInQueue();
        if ($count > 0) {
            $left[] = "queue $id: $count";
        }
    }
    if ($left) {
        throw new \RuntimeException('request sets are still waiting after the move (' . implode(', ', $left) . '): is a queue processor or an ingestion node with the old number of queues still running?');
    }
    say("moved $waiting request set(s); nothing is left in $removed");
}

// ---------------------------------------------------------------------------------
// Inputs.

/**
 * Stops with exit 4 when any of the given inputs is missing, naming the deployment
 * file's fields (all of them in one line).
 *
 * @param string[] $names environment variable names
 */
function requireInputs(string $why, array $names): void
{
    $missing = [];
    foreach ($names as $name) {
        if ($name === 'MATOMO_NOMAD_SUPERUSER_PASSWORD_FILE') {
            $file = passwordFile();
            $present = is_file($file) && is_readable($file) && filesize($file) > 0;
        } else {
            $present = env($name) !== '';
        }
        if (!$present) {
            $missing[] = INPUT_FIELDS[$name];
        }
    }
    if ($missing) {
        throw new Stop(EXIT_INPUTS_MISSING, "$why and the install inputs are missing: set " . implode(', ', $missing) . ' in the deployment file ([install])');
    }
}

function passwordFile(): string
{
    return env('MATOMO_NOMAD_SUPERUSER_PASSWORD_FILE') ?: DEFAULT_PASSWORD_FILE;
}

/**
 * The password, the file's exact bytes (never printed). Refused when no login form
 * could send it: a line break (an HTML password field drops it), or bytes that are not
 * UTF-8 (which the entity encoding in ensureSuperUser() cannot carry).
 */
function superuserPassword(): string
{
    $password = @file_get_contents(passwordFile());
    if ($password === false || $password === '') {
        throw new Stop(EXIT_INPUTS_MISSING, 'the superuser password file ' . passwordFile() . ' is missing or empty: set ' . INPUT_FIELDS['MATOMO_NOMAD_SUPERUSER_PASSWORD_FILE']);
    }
    if (strpbrk($password, "\r\n") !== false) {
        throw new Stop(EXIT_INPUTS_MISSING, 'the superuser password contains a line break (a trailing newline?), which no login form can send: store it without one in ' . INPUT_FIELDS['MATOMO_NOMAD_SUPERUSER_PASSWORD_FILE']);
    }
    if (htmlspecialchars_decode(htmlspecialchars($password, ENT_QUOTES, 'UTF-8'), ENT_QUOTES) !== $password) {
        throw new Stop(EXIT_INPUTS_MISSING, 'the superuser password is not valid UTF-8: fix ' . INPUT_FIELDS['MATOMO_NOMAD_SUPERUSER_PASSWORD_FILE']);
    }
    return $password;
}

exit(main($_SERVER['argv'] ?? []));
