<?php
/**
 * A stand-in for Matomo 5.1.2, for tests/test_setup_script.py: it defines, in their real
 * namespaces and with their real signatures, exactly the classes and methods that
 * matomo_nomad/templates/image/setup.php calls (and what those call back), and nothing
 * of Matomo's code. Each stand-in names the file:line (tag 5.1.2) it replaces.
 *
 * State lives in the JSON file named by SETUP_STUB_STATE; every call is appended, one
 * JSON object per line, to the file named by SETUP_STUB_LOG. State keys:
 *   core_version       Version::VERSION (the code)
 *   tables             Matomo's tables in the database ([] = an empty database)
 *   options            the option table: version_core, version_<Plugin>, install_version
 *   plugins            loaded plugins, in order: {name: {version, install}}, install is
 *                      "ok", "forceSave" (QueuedTracking's Configuration::install) or
 *                      "throw:<message>"
 *   update_files       update files per component: {core: ["5.1.2-rc1", ...], Plugin: [...]}
 *   update_errors      {"<component>@<file version>": message}: that migration fails
 *   update_warnings    {"<component>@<file version>": message}
 *   users              [{login, email, password (as Matomo would hash it), superuser}]
 *   sites              [{idsite, name, urls, timezone, currency, ...}]
 *   db                 user_collation, connection_collation, archive_tables {name: collation}
 *   throw              {"Class::method": message}: that call throws \Exception(message)
 * The config comes from the real INI files under PIWIK_USER_PATH/config.
 */

namespace MatomoStub {
    final class Stub
    {
        /** @var array */
        public static $state;
        /** @var bool */
        public static $environmentReady = false;

        public static function boot(): void
        {
            $path = getenv('SETUP_STUB_STATE');
            if (!$path || !is_file($path)) {
                throw new \LogicException('stub: SETUP_STUB_STATE names no file');
            }
            self::$state = json_decode(file_get_contents($path), true, 512, JSON_THROW_ON_ERROR);
        }

        public static function save(): void
        {
            file_put_contents(
                getenv('SETUP_STUB_STATE'),
                json_encode(self::$state, JSON_PRETTY_PRINT | JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES | JSON_INVALID_UTF8_SUBSTITUTE)
            );
        }

        /** Record a call; throw if the state says this call fails. */
        public static function call(string $name, array $args = []): void
        {
            $line = json_encode(['call' => $name, 'args' => $args], JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES | JSON_INVALID_UTF8_SUBSTITUTE);
            file_put_contents(getenv('SETUP_STUB_LOG'), $line . "\n", FILE_APPEND);
            if (isset(self::$state['throw'][$name])) {
                throw new \Exception(self::$state['throw'][$name]);
            }
        }

        public static function requireEnvironment(string $name): void
        {
            if (!self::$environmentReady) {
                throw new \LogicException("stub: $name called before Environment::init()");
            }
        }

        /** What MySQL says when a query needs Matomo's tables and there are none. */
        public static function requireTables(string $table): void
        {
            if (empty(self::$state['tables'])) {
                throw new \Exception("SQLSTATE[42S02]: Base table or view not found: 1146 Table 'matomo." . \Piwik\Common::prefixTable($table) . "' doesn't exist");
            }
        }

        public static function option(string $name)
        {
            return array_key_exists($name, self::$state['options']) ? self::$state['options'][$name] : false;
        }

        public static function setOption(string $name, $value): void
        {
            self::$state['options'][$name] = $value;
            self::save();
        }

        /** The collation detection of core/Updates/5.1.2-rc1.php 60-107, on the stub's database. */
        public static function detectCollation(): ?string
        {
            $db = self::$state['db'] ?? [];
            $user = $db['user_collation'] ?? null;
            if (empty($user) || empty(self::$state['tables'])) {
                return null;
            }
            if ($user === ($db['connection_collation'] ?? null)) {
                return $user;
            }
            $archives = array_keys($db['archive_tables'] ?? []);
            if (!$archives) {
                return null;
            }
            rsort($archives);
            return ($db['archive_tables'][$archives[0]] ?? null) === $user ? $user : null;
        }
    }

    /** The adapter Db::get() returns (core/Db/Adapter/Pdo/Mysql.php, Zend_Db_Adapter_Abstract). */
    final class DbAdapter
    {
        // libs/Zend/Db/Adapter/Abstract.php:750
        public function fetchRow($sql, $bind = array(), $fetchMode = null)
        {
            Stub::call('Db::fetchRow', [$sql, $bind]);
            if ($sql !== 'SHOW TABLE STATUS WHERE Name = ?') {
                throw new \LogicException("stub: unexpected query $sql");
            }
            $name = $bind[0];
            $db = Stub::$state['db'] ?? [];
            if ($name === \Piwik\Common::prefixTable('user') && !empty(Stub::$state['tables'])) {
                return ['Name' => $name, 'Collation' => $db['user_collation'] ?? null];
            }
            if (isset($db['archive_tables'][$name])) {
                return ['Name' => $name, 'Collation' => $db['archive_tables'][$name]];
            }
            return false;
        }

        // libs/Zend/Db/Adapter/Abstract.php:825
        public function fetchOne($sql, $bind = array())
        {
            Stub::call('Db::fetchOne', [$sql, $bind]);
            if ($sql !== 'SELECT @@collation_connection') {
                throw new \LogicException("stub: unexpected query $sql");
            }
            return Stub::$state['db']['connection_collation'] ?? false;
        }
    }

    /** A plugin migration or core migration error (core/Updater/UpdaterErrorException.php). */
    final class UpdaterErrorException extends \Exception
    {
    }
}

namespace Psr\Container {
    // vendor/psr/container: the interface Piwik\Container\Container implements
    interface ContainerInterface
    {
        public function get($id);

        public function has($id);
    }
}

namespace Piwik\Container {
    use Psr\Container\ContainerInterface;

    // core/Container/Container.php:23 (PHP-DI underneath): array definitions, where a
    // closure is a factory whose parameters are resolved, and set().
    class Container implements ContainerInterface
    {
        private $definitions;
        private $entries = [];

        public function __construct(array $definitions)
        {
            $this->definitions = $definitions;
        }

        public function get($id)
        {
            if (array_key_exists($id, $this->entries)) {
                return $this->entries[$id];
            }
            if (isset($this->definitions[$id])) {
                $factory = $this->definitions[$id];
                $args = [];
                foreach ((new \ReflectionFunction($factory))->getParameters() as $parameter) {
                    $type = $parameter->getType();
                    $class = $type instanceof \ReflectionNamedType && !$type->isBuiltin() ? $type->getName() : null;
                    if ($class !== null && !($this instanceof $class)) {
                        throw new \LogicException("stub: cannot resolve factory parameter \$" . $parameter->getName() . " ($class) of $id");
                    }
                    $args[] = $this;
                }
                return $this->entries[$id] = $factory(...$args);
            }
            if (class_exists($id)) { // autowiring
                return $this->entries[$id] = new $id();
            }
            throw new \LogicException("stub: no entry $id in the container");
        }

        public function has($id)
        {
            return array_key_exists($id, $this->entries) || isset($this->definitions[$id]) || class_exists($id);
        }

        public function set($id, $value)
        {
            $this->entries[$id] = $value;
        }
    }

    class StaticContainer
    {
        private static $container;

        public static function push(Container $container)
        {
            self::$container = $container;
        }

        // core/Container/StaticContainer.php:41
        public static function getContainer()
        {
            if (self::$container === null) {
                throw new \LogicException('stub: the container is used before Environment::init()');
            }
            return self::$container;
        }

        // core/Container/StaticContainer.php:82
        public static function get($name)
        {
            return self::getContainer()->get($name);
        }
    }
}

namespace Piwik\Config {
    // core/Config/IniFileChain.php: global and common merged recursively, then
    // config.ini.php section by section (mergeFileSettings, 315-330).
    class IniFileChain
    {
        protected $mergedSettings = [];

        // core/Config/IniFileChain.php:62
        public function __construct(array $defaultSettingsFiles = [], $userSettingsFile = null)
        {
            $this->load($defaultSettingsFiles, $userSettingsFile);
        }

        // core/Config/IniFileChain.php:213: the files read again, in-memory changes dropped
        public function reload($defaultSettingsFiles = [], $userSettingsFile = null)
        {
            \MatomoStub\Stub::call('IniFileChain::reload');
            $this->load($defaultSettingsFiles, $userSettingsFile);
        }

        private function load(array $defaultSettingsFiles, $userSettingsFile): void
        {
            $merged = [];
            foreach ($defaultSettingsFiles as $file) {
                if (is_readable($file)) {
                    $merged = array_replace_recursive($merged, parse_ini_file($file, true));
                }
            }
            if ($userSettingsFile !== null && is_readable($userSettingsFile)) {
                foreach (parse_ini_file($userSettingsFile, true) as $name => $section) {
                    $merged[$name] = isset($merged[$name]) ? array_merge($merged[$name], $section) : $section;
                }
            }
            $this->mergedSettings = $merged;
        }

        // core/Config/IniFileChain.php:73
        public function &get($name)
        {
            if (!isset($this->mergedSettings[$name])) {
                $this->mergedSettings[$name] = [];
            }
            $result =& $this->mergedSettings[$name];
            return $result;
        }

        // core/Config/IniFileChain.php:100
        public function set($name, $value)
        {
            $this->mergedSettings[$name] = $value;
        }

        // core/Config/IniFileChain.php:116
        public function &getAll()
        {
            return $this->mergedSettings;
        }
    }
}

namespace Piwik\Application\Kernel {
    use Piwik\Config;
    use Piwik\Config\IniFileChain;

    class GlobalSettingsProvider
    {
        protected $iniFileChain;
        protected $pathGlobal;
        protected $pathCommon;
        protected $pathLocal;

        // core/Application/Kernel/GlobalSettingsProvider.php:51
        public function __construct($pathGlobal = null, $pathLocal = null, $pathCommon = null)
        {
            $this->pathGlobal = $pathGlobal ?: PIWIK_DOCUMENT_ROOT . Config::DEFAULT_GLOBAL_CONFIG_PATH;
            $this->pathCommon = $pathCommon ?: PIWIK_USER_PATH . Config::DEFAULT_COMMON_CONFIG_PATH;
            $this->pathLocal = $pathLocal ?: PIWIK_USER_PATH . Config::DEFAULT_LOCAL_CONFIG_PATH;
            $this->iniFileChain = new IniFileChain([$this->pathGlobal, $this->pathCommon], $this->pathLocal);
        }

        // core/Application/Kernel/GlobalSettingsProvider.php:108
        public function reload($pathGlobal = null, $pathLocal = null, $pathCommon = null)
        {
            $this->pathGlobal = $pathGlobal ?: $this->pathGlobal;
            $this->pathCommon = $pathCommon ?: $this->pathCommon;
            $this->pathLocal = $pathLocal ?: $this->pathLocal;
            $this->iniFileChain->reload([$this->pathGlobal, $this->pathCommon], $this->pathLocal);
        }

        // core/Application/Kernel/GlobalSettingsProvider.php:93
        public function getIniFileChain()
        {
            return $this->iniFileChain;
        }

        public function getPathGlobal()
        {
            return $this->pathGlobal;
        }

        public function getPathLocal()
        {
            return $this->pathLocal;
        }

        public function getPathCommon()
        {
            return $this->pathCommon;
        }
    }
}

namespace Piwik\Application {
    use MatomoStub\Stub;
    use Piwik\Container\Container;
    use Piwik\Container\StaticContainer;

    class Environment
    {
        private $environment;
        private $definitions;

        // core/Application/Environment.php:78
        public function __construct($environment, array $definitions = array())
        {
            $this->environment = $environment;
            $this->definitions = $definitions;
        }

        // core/Application/Environment.php:92: the container, with the caller's
        // definitions added last (core/Container/ContainerFactory.php 96-105).
        public function init()
        {
            Stub::call('Environment::init', [$this->environment, array_keys($this->definitions)]);
            $defaults = [
                // no definition in config/global.php: autowired with the settings provider
                'Piwik\Config' => function (Container $c) {
                    return new \Piwik\Config($c->get('Piwik\Application\Kernel\GlobalSettingsProvider'));
                },
            ];
            $container = new Container(array_merge($defaults, $this->definitions));
            $container->set('Piwik\Application\Kernel\GlobalSettingsProvider', new Kernel\GlobalSettingsProvider());
            StaticContainer::push($container);
            // EnvironmentValidator: Matomo refuses to start without config.ini.php
            if (!is_file(PIWIK_USER_PATH . '/config/config.ini.php')) {
                throw new \Exception('stub: config/config.ini.php is missing');
            }
            Stub::$environmentReady = true;
        }
    }
}

namespace Piwik {
    use MatomoStub\DbAdapter;
    use MatomoStub\Stub;
    use MatomoStub\UpdaterErrorException;
    use Piwik\Container\StaticContainer;

    class Version
    {
        // core/Version.php:25
        public const VERSION = \STUB_CORE_VERSION;
    }

    class Config
    {
        public const DEFAULT_LOCAL_CONFIG_PATH = '/config/config.ini.php';
        public const DEFAULT_COMMON_CONFIG_PATH = '/config/common.config.ini.php';
        public const DEFAULT_GLOBAL_CONFIG_PATH = '/config/global.ini.php';

        protected $settings;

        // core/Config.php:65
        public static function getInstance()
        {
            return StaticContainer::get('Piwik\Config');
        }

        // core/Config.php:70
        public function __construct(Application\Kernel\GlobalSettingsProvider $settings)
        {
            $this->settings = $settings;
        }

        // core/Config.php:80, 90, 100
        public function getLocalPath()
        {
            return $this->settings->getPathLocal();
        }

        public function getGlobalPath()
        {
            return $this->settings->getPathGlobal();
        }

        public function getCommonPath()
        {
            return $this->settings->getPathCommon();
        }

        // core/Config.php:336 (no __isset, as in Matomo: empty($config->X) is always true)
        public function &__get($name)
        {
            $section =& $this->settings->getIniFileChain()->get($name);
            return $section;
        }

        // core/Config.php:373
        public function __set($name, $value)
        {
            $this->settings->getIniFileChain()->set($name, $value);
        }

        // core/Config.php:398: writes the file, as root whatever its mode
        protected function writeConfig()
        {
            Stub::call('Config::writeConfig');
            $out = "; <?php exit; ?> DO NOT REMOVE THIS LINE\n";
            foreach ($this->settings->getIniFileChain()->getAll() as $name => $section) {
                $out .= "[$name]\n";
                foreach ((array) $section as $key => $value) {
                    foreach ((array) $value as $item) {
                        $out .= is_array($value) ? "{$key}[] = \"$item\"\n" : "$key = \"$item\"\n";
                    }
                }
            }
            if (@file_put_contents($this->getLocalPath(), $out, LOCK_EX) === false) {
                throw new \Exception('The Matomo configuration file (config/config.ini.php) is not writable');
            }
        }

        // core/Config.php:308
        protected function reload($pathLocal = null, $pathGlobal = null, $pathCommon = null)
        {
            $this->settings->reload($pathGlobal, $pathLocal, $pathCommon);
        }

        // core/Config.php:440
        public function forceSave()
        {
            Stub::call('Config::forceSave');
            $this->writeConfig();
        }
    }

    class Common
    {
        // core/Common.php:71
        public static function prefixTable($table)
        {
            $prefix = Config::getInstance()->database['tables_prefix'];
            return $prefix . $table;
        }

        // core/Common.php:388-421: line breaks and NUL bytes removed, entities decoded,
        // then HTML special characters encoded (ENT_QUOTES, Common.php:35)
        public static function sanitizeInputValue($value)
        {
            $value = str_replace(["\n", "\r", "\0"], '', (string) $value);
            $value = html_entity_decode($value, ENT_QUOTES, 'UTF-8');
            return htmlspecialchars($value, ENT_QUOTES, 'UTF-8');
        }

        // core/Common.php:430
        public static function unsanitizeInputValue($value)
        {
            return htmlspecialchars_decode($value ?? '', ENT_QUOTES);
        }
    }

    class Db
    {
        // core/Db.php:50
        public static function get()
        {
            Stub::requireEnvironment('Db::get');
            return new DbAdapter();
        }
    }

    class DbHelper
    {
        // core/DbHelper.php:27 (core/Db/Schema/Mysql.php 453-497): Matomo's tables only;
        // with some, every plugin is loaded and then the activated ones again (478-483)
        public static function getTablesInstalled($forceReload = true)
        {
            Stub::call('DbHelper::getTablesInstalled');
            Stub::requireEnvironment('DbHelper::getTablesInstalled');
            if (!empty(Stub::$state['tables'])) {
                Plugin\Manager::getInstance()->reloadActivatedPlugins();
            }
            return Stub::$state['tables'];
        }

        // core/DbHelper.php:143
        public static function createTables()
        {
            Stub::call('DbHelper::createTables');
            Stub::requireEnvironment('DbHelper::createTables');
            foreach (['access', 'option', 'site', 'user', 'log_visit', 'log_link_visit_action'] as $table) {
                $name = Common::prefixTable($table);
                if (!in_array($name, Stub::$state['tables'], true)) {
                    Stub::$state['tables'][] = $name;
                }
            }
            Stub::save();
        }

        // core/DbHelper.php:106 (core/Db/Schema/Mysql.php 591-604)
        public static function createAnonymousUser()
        {
            Stub::call('DbHelper::createAnonymousUser');
            Stub::requireTables('user');
            foreach (Stub::$state['users'] as $user) {
                if ($user['login'] === 'anonymous') {
                    return; // INSERT IGNORE
                }
            }
            Stub::$state['users'][] = ['login' => 'anonymous', 'email' => 'anonymous@example.org', 'password' => '', 'superuser' => false];
            Stub::save();
        }

        // core/DbHelper.php:114 (core/Db/Schema/Mysql.php 609-614)
        public static function recordInstallVersion()
        {
            Stub::call('DbHelper::recordInstallVersion');
            Stub::requireTables('option');
            if (!Stub::option('install_version')) {
                Stub::setOption('install_version', Version::VERSION);
            }
        }
    }

    class Filesystem
    {
        // core/Filesystem.php:34
        public static function deleteAllCacheOnUpdate($pluginName = false)
        {
            Stub::call('Filesystem::deleteAllCacheOnUpdate');
        }
    }

    class ErrorHandler
    {
        // core/ErrorHandler.php:131
        public static function registerErrorHandler()
        {
            Stub::call('ErrorHandler::registerErrorHandler');
        }
    }

    class NoAccessException extends \Exception
    {
    }

    class Access
    {
        private $hasSuperUserAccess = false;

        // core/Access.php:85
        public static function getInstance()
        {
            return StaticContainer::get('Piwik\Access');
        }

        // core/Access.php:331
        public function hasSuperUserAccess()
        {
            return $this->hasSuperUserAccess;
        }

        // core/Access.php:442
        public function checkUserHasSuperUserAccess()
        {
            if (!$this->hasSuperUserAccess) {
                throw new NoAccessException("You can't access this resource as it requires 'superuser' access.");
            }
        }

        // core/Access.php:658
        public static function doAsSuperUser($function)
        {
            Stub::call('Access::doAsSuperUser');
            $access = self::getInstance();
            $was = $access->hasSuperUserAccess;
            $access->hasSuperUserAccess = true;
            try {
                return $function();
            } finally {
                $access->hasSuperUserAccess = $was;
            }
        }
    }

    class Piwik
    {
        // core/Piwik.php:460
        public static function checkUserHasSuperUserAccess()
        {
            Access::getInstance()->checkUserHasSuperUserAccess();
        }
    }

    class Plugin
    {
        protected $pluginName;

        // core/Plugin.php:125
        public function __construct($pluginName = false)
        {
            $this->pluginName = $pluginName;
        }

        // core/Plugin.php:273
        public function install()
        {
            Stub::call('Plugin::install', [$this->pluginName]);
            Stub::requireTables('option');
            $action = Stub::$state['plugins'][$this->pluginName]['install'] ?? 'ok';
            if ($action === 'forceSave') {
                // plugins/QueuedTracking/Configuration.php 24-43 (plugin 5.1.1)
                Stub::call('QueuedTracking\Configuration::install');
                $config = Config::getInstance();
                if (empty($config->QueuedTracking)) {
                    $config->QueuedTracking = array();
                }
                $reports = $config->QueuedTracking;
                if (empty($reports['notify_queue_threshold_single_queue'])) {
                    $reports['notify_queue_threshold_single_queue'] = 250000;
                }
                $config->QueuedTracking = $reports;
                $config->forceSave();
            } elseif (strpos($action, 'throw:') === 0) {
                throw new \Exception(substr($action, strlen('throw:')));
            }
            Stub::$state['plugin_tables'][] = $this->pluginName;
            Stub::save();
        }

        // core/Plugin.php:313
        final public function getVersion()
        {
            return Stub::$state['plugins'][$this->pluginName]['version'];
        }

        // core/Plugin.php:336
        final public function getPluginName()
        {
            return $this->pluginName;
        }
    }

    class Updater
    {
        private $componentsWithNewVersion = [];

        // core/Updater.php:64
        public function __construct($pathUpdateFileCore = null, $pathUpdateFilePlugins = null, $columnsUpdater = null)
        {
            Stub::requireEnvironment('Updater::__construct');
        }

        // core/Updater.php:172: false while the option table is missing (MySQL 1146)
        public function getCurrentComponentVersion($name)
        {
            Stub::call('Updater::getCurrentComponentVersion', [$name]);
            if (empty(Stub::$state['tables'])) {
                return false;
            }
            return Stub::option('version_' . $name);
        }

        // core/Updater.php:97: errors of a missing option table are ignored
        public function markComponentSuccessfullyUpdated($name, $version, $isNew = false)
        {
            Stub::call('Updater::markComponentSuccessfullyUpdated', [$name, $version, $isNew]);
            if (!empty(Stub::$state['tables'])) {
                Stub::setOption('version_' . $name, $version);
            }
        }

        // core/Updater.php:536-564 (with getComponentsWithNewVersion 408-445 and
        // loadComponentsWithUpdateFile 346-395; no dimension components here)
        public function getComponentUpdates()
        {
            Stub::call('Updater::getComponentUpdates');
            $toCheck = ['core' => Version::VERSION];
            $manager = Plugin\Manager::getInstance();
            foreach ($manager->getLoadedPlugins() as $name => $plugin) {
                if ($manager->isPluginInstalled($name)) {
                    $toCheck[$name] = $plugin->getVersion();
                }
            }

            if (empty($this->getCurrentComponentVersion('core'))) {
                $this->markComponentSuccessfullyUpdated('core', Version::VERSION);
            }
            $this->componentsWithNewVersion = [];
            foreach ($toCheck as $name => $version) {
                $current = $this->getCurrentComponentVersion($name);
                if (version_compare((string) $current, $version) == -1 || $current === false) {
                    $this->componentsWithNewVersion[$name] = [$current, $version];
                }
            }

            $withFiles = [];
            foreach ($this->componentsWithNewVersion as $name => list($current, $new)) {
                foreach (Stub::$state['update_files'][$name] ?? [] as $fileVersion) {
                    if (version_compare((string) $current, $fileVersion) == -1 && version_compare($fileVersion, $new) <= 0) {
                        $withFiles[$name][PIWIK_INCLUDE_PATH . "/updates/$name/$fileVersion.php"] = $fileVersion;
                    }
                }
                if (isset($withFiles[$name])) {
                    uasort($withFiles[$name], 'version_compare');
                } else {
                    $this->markComponentSuccessfullyUpdated($name, $new);
                }
            }
            return count($withFiles) ? $withFiles : null;
        }

        // core/Updater.php:460-528 (update() 295-339, executeMigration 587-606)
        public function updateComponents($componentsWithUpdateFile)
        {
            Stub::call('Updater::updateComponents', [$componentsWithUpdateFile]);
            $warnings = [];
            $errors = [];
            $coreError = false;
            foreach ($componentsWithUpdateFile as $name => $files) {
                try {
                    foreach ($files as $file => $fileVersion) {
                        $warning = $this->migrate($name, $fileVersion);
                        if ($warning !== null) {
                            $warnings[] = $warning;
                        }
                        $this->markComponentSuccessfullyUpdated($name, $fileVersion);
                    }
                    $this->markComponentSuccessfullyUpdated($name, $this->componentsWithNewVersion[$name][1]);
                } catch (UpdaterErrorException $e) {
                    $errors[] = $e->getMessage();
                    if ($name === 'core') {
                        $coreError = true;
                        break;
                    }
                }
            }
            return ['warnings' => $warnings, 'errors' => $errors, 'coreError' => $coreError, 'deactivatedPlugins' => []];
        }

        private function migrate(string $name, string $fileVersion): ?string
        {
            Stub::call('migration', [$name, $fileVersion]);
            $key = "$name@$fileVersion";
            if (isset(Stub::$state['update_errors'][$key])) {
                throw new UpdaterErrorException(Stub::$state['update_errors'][$key]);
            }
            if ($name !== 'core' && !in_array($name, Stub::$state['plugin_tables'] ?? [], true)) {
                // the plugin's migration alters a table its install step creates
                throw new UpdaterErrorException("updates/$name/$fileVersion.php:\nError trying to execute the migration 'ALTER TABLE ...'.\nThe error was: SQLSTATE[42S02]: Base table or view not found: 1146 Table 'matomo." . Common::prefixTable(strtolower($name)) . "' doesn't exist");
            }
            if ($name === 'core' && in_array($fileVersion, ['5.1.2-rc1', '5.2.0-b2'], true)) {
                // core/Updates/5.1.2-rc1.php 32-58, then Migration\Config\Set::exec()
                // (core/Updater/Migration/Config/Set.php 51-56)
                $config = Config::getInstance();
                $database = $config->database;
                if (empty($database['collation'])) {
                    $collation = Stub::detectCollation();
                    if ($collation !== null) {
                        Stub::call('migration:config:set', ['database', 'collation', $collation]);
                        $config->database['collation'] = $collation;
                        $config->forceSave();
                    }
                }
            }
            return Stub::$state['update_warnings'][$key] ?? null;
        }
    }
}

namespace Piwik\DataAccess {
    use MatomoStub\Stub;

    class ArchiveTableCreator
    {
        // core/DataAccess/ArchiveTableCreator.php:17
        public const NUMERIC_TABLE = "numeric";
        public const BLOB_TABLE = "blob";

        // core/DataAccess/ArchiveTableCreator.php:77
        public static function getTablesArchivesInstalled($type = null, $forceReload = false)
        {
            Stub::call('ArchiveTableCreator::getTablesArchivesInstalled', [$type]);
            $tables = array_keys(Stub::$state['db']['archive_tables'] ?? []);
            if (empty($type)) {
                return $tables;
            }
            return array_values(array_filter($tables, function ($table) use ($type) {
                return preg_match('/archive_' . preg_quote($type) . '_/', $table) === 1;
            }));
        }
    }
}

namespace Piwik\Plugin {
    use MatomoStub\Stub;
    use Piwik\Config;
    use Piwik\Container\StaticContainer;
    use Piwik\Plugin;

    class Manager
    {
        protected $loadedPlugins = [];

        // core/Plugin/Manager.php:49
        public static function getInstance()
        {
            return StaticContainer::get('Piwik\Plugin\Manager');
        }

        // core/Plugin/Manager.php:112
        public function loadActivatedPlugins()
        {
            Stub::call('Manager::loadActivatedPlugins');
            Stub::requireEnvironment('Manager::loadActivatedPlugins');
            $this->reloadActivatedPlugins();
        }

        /** New plugin objects, as Schema::getTablesInstalled() makes (Mysql.php 478-483). */
        public function reloadActivatedPlugins()
        {
            $this->loadedPlugins = [];
            foreach (array_keys(Stub::$state['plugins']) as $name) {
                $this->loadedPlugins[$name] = new Plugin($name);
            }
        }

        // core/Plugin/Manager.php:1725
        public function loadPluginTranslations()
        {
            Stub::call('Manager::loadPluginTranslations');
        }

        // core/Plugin/Manager.php:998
        public function getLoadedPlugins()
        {
            return $this->loadedPlugins;
        }

        // core/Plugin/Manager.php:1660: [PluginsInstalled] from the config only
        public function isPluginInstalled($pluginName, $checkPluginExistsInFilesystem = false)
        {
            $section = Config::getInstance()->PluginsInstalled;
            return in_array($pluginName, $section['PluginsInstalled'] ?? [], true);
        }
    }

    abstract class API
    {
        // core/Plugin/API.php:58
        public static function getInstance()
        {
            return StaticContainer::get(get_called_class());
        }
    }
}

namespace Piwik\Plugins\UsersManager {
    use MatomoStub\Stub;
    use Piwik\Common;
    use Piwik\Piwik;

    class API extends \Piwik\Plugin\API
    {
        // plugins/UsersManager/API.php:872
        public function getUsersHavingSuperUserAccess()
        {
            Stub::call('UsersManager\API::getUsersHavingSuperUserAccess');
            Piwik::checkUserHasSuperUserAccess(); // checkUserIsNotAnonymous, passed by a superuser
            Stub::requireTables('user');
            $result = [];
            foreach (Stub::$state['users'] as $user) {
                if ($user['superuser']) {
                    $result[] = ['login' => $user['login'], 'email' => $user['email'], 'superuser_access' => 1];
                }
            }
            return $result;
        }

        // plugins/UsersManager/API.php:1030
        public function userExists($userLogin)
        {
            Stub::call('UsersManager\API::userExists', [$userLogin]);
            Piwik::checkUserHasSuperUserAccess();
            foreach (Stub::$state['users'] as $user) {
                if ($user['login'] === $userLogin) {
                    return true;
                }
            }
            return false;
        }

        // plugins/UsersManager/API.php:740: the password is unsanitized (750) and checked
        // (UsersManager::checkPassword, at least 6 characters) before it is hashed
        public function addUser($userLogin, $password, $email, $_isPasswordHashed = false, $initialIdSite = null, $passwordConfirmation = null)
        {
            Stub::call('UsersManager\API::addUser', [$userLogin, $password, $email, $_isPasswordHashed, $initialIdSite, $passwordConfirmation]);
            Piwik::checkUserHasSuperUserAccess(); // checkUserHasSomeAdminAccess
            Stub::requireTables('user');
            $password = Common::unsanitizeInputValue($password);
            if (strlen($password) < 6) {
                throw new \Exception('The password must be at least 6 characters long.');
            }
            if ($this->userExists($userLogin)) {
                throw new \Exception("Username '$userLogin' already exists.");
            }
            Stub::$state['users'][] = ['login' => (string) $userLogin, 'email' => (string) $email, 'password' => $password, 'superuser' => false];
            Stub::save();
        }
    }

    class UserUpdater
    {
        // plugins/UsersManager/UserUpdater.php:45
        public function setSuperUserAccessWithoutCurrentPassword($userLogin, $hasSuperUserAccess)
        {
            Stub::call('UserUpdater::setSuperUserAccessWithoutCurrentPassword', [$userLogin, $hasSuperUserAccess]);
            Piwik::checkUserHasSuperUserAccess();
            foreach (Stub::$state['users'] as $i => $user) {
                if ($user['login'] === $userLogin) {
                    Stub::$state['users'][$i]['superuser'] = (bool) $hasSuperUserAccess;
                    Stub::save();
                    return;
                }
            }
            throw new \Exception("User '$userLogin' doesn't exist.");
        }
    }
}

namespace Piwik\Plugins\SitesManager {
    use MatomoStub\Stub;
    use Piwik\Piwik;

    class API extends \Piwik\Plugin\API
    {
        // plugins/SitesManager/API.php:346: [] while the tables are missing
        public function getAllSitesId()
        {
            Stub::call('SitesManager\API::getAllSitesId');
            Piwik::checkUserHasSuperUserAccess();
            if (empty(Stub::$state['tables'])) {
                return [];
            }
            return array_map(function ($site) {
                return $site['idsite'];
            }, Stub::$state['sites']);
        }

        // plugins/SitesManager/API.php:632
        public function addSite(
            $siteName,
            $urls = null,
            $ecommerce = null,
            $siteSearch = null,
            $searchKeywordParameters = null,
            $searchCategoryParameters = null,
            $excludedIps = null,
            $excludedQueryParameters = null,
            $timezone = null,
            $currency = null,
            $group = null,
            $startDate = null,
            $excludedUserAgents = null,
            $keepURLFragments = null,
            $type = null,
            $settingValues = null,
            $excludeUnknownUrls = null,
            $excludedReferrers = null
        ) {
            $args = get_defined_vars();
            Stub::call('SitesManager\API::addSite', $args);
            Piwik::checkUserHasSuperUserAccess();
            Stub::requireTables('site');
            $args['idsite'] = count(Stub::$state['sites']) + 1;
            Stub::$state['sites'][] = $args;
            Stub::save();
            return $args['idsite'];
        }
    }
}

namespace Piwik\Tracker {
    // core/Tracker/Request.php: a tracking request's parameters
    class Request
    {
        private $params;

        public function __construct($params)
        {
            $this->params = $params;
        }

        public function getParams()
        {
            return $this->params;
        }

        // core/Tracker/Request.php:746: the visitor id as binary (from _id, 16 hex characters)
        public function getVisitorId()
        {
            $id = $this->params['_id'] ?? '';
            return ($id !== '' && ctype_xdigit($id)) ? hex2bin($id) : false;
        }

        // core/Tracker/Request.php:894
        public function getIpString()
        {
            return $this->params['cip'] ?? '127.0.0.1';
        }
    }

    // core/Tracker/RequestSet.php: the requests of one tracking HTTP request
    class RequestSet
    {
        private $requests = [];
        private $state = [];

        // core/Tracker/RequestSet.php:33
        public function setRequests($requests)
        {
            $this->requests = [];
            foreach ($requests as $request) {
                $this->requests[] = $request instanceof Request ? $request : new Request($request);
            }
        }

        // core/Tracker/RequestSet.php:67
        public function getRequests()
        {
            return $this->requests;
        }

        // core/Tracker/RequestSet.php:119
        public function hasRequests()
        {
            return !empty($this->requests);
        }

        // core/Tracker/RequestSet.php:138-152: requests (their parameters), env, tokenAuth, time
        public function getState()
        {
            $requests = [];
            foreach ($this->requests as $request) {
                $requests[] = $request->getParams();
            }
            return array_merge($this->state, ['requests' => $requests]);
        }

        // core/Tracker/RequestSet.php:154
        public function restoreState($state)
        {
            $this->state = $state;
            $this->setRequests($state['requests'] ?? []);
        }
    }
}

namespace Piwik\Plugins\QueuedTracking\Queue\Backend {
    use MatomoStub\Stub;

    /**
     * QueuedTracking 5.1.1 Queue/Backend/Redis.php on the stub's state: `redis` holds each
     * list (key => values). Values are stored as given (the real backend gzcompresses them
     * and reads uncompressed values as they are, 121-130).
     */
    class Redis
    {
        private function &lists(): array
        {
            if (!isset(Stub::$state['redis'])) {
                Stub::$state['redis'] = [];
            }
            $lists =& Stub::$state['redis'];
            return $lists;
        }

        // Redis.php:99: RPUSH each value
        public function appendValuesToList($key, $values)
        {
            $lists =& $this->lists();
            foreach ($values as $value) {
                $lists[$key][] = $value;
            }
            Stub::save();
        }

        // Redis.php:113: LRANGE key 0 n-1
        public function getFirstXValuesFromList($key, $numValues)
        {
            if ($numValues <= 0) {
                return [];
            }
            return array_slice($this->lists()[$key] ?? [], 0, $numValues);
        }

        // Redis.php:135: LTRIM key n -1
        public function removeFirstXValuesFromList($key, $numValues)
        {
            if ($numValues <= 0) {
                return;
            }
            $lists =& $this->lists();
            if (isset($lists[$key])) {
                $lists[$key] = array_values(array_slice($lists[$key], $numValues));
                if (!$lists[$key]) {
                    unset($lists[$key]); // Redis removes an empty list
                }
            }
            Stub::save();
        }

        // Redis.php:156: LLEN
        public function getNumValuesInList($key)
        {
            return count($this->lists()[$key] ?? []);
        }

        // Redis.php:183: DEL
        public function delete($key)
        {
            Stub::call('Redis::delete', [$key]);
            $lists =& $this->lists();
            $existed = isset($lists[$key]);
            unset($lists[$key]);
            Stub::save();
            return $existed;
        }
    }
}

namespace Piwik\Plugins\QueuedTracking {
    use Piwik\Tracker\RequestSet;

    // QueuedTracking 5.1.1 Queue.php: one queue, the list trackingQueueV1[_<id>]
    class Queue
    {
        public const PREFIX = 'trackingQueueV1';

        private $backend;
        private $key;
        private $id;
        private $numRequestsToProcessInBulk = 50;

        // Queue.php:33-43: queue 0 has no suffix
        public function __construct($backend, $id)
        {
            $this->backend = $backend;
            $this->id = $id;
            $this->key = self::PREFIX . (!empty($id) ? '_' . $id : '');
        }

        // Queue.php:55
        public function setNumberOfRequestsToProcessAtSameTime($numRequests)
        {
            $this->numRequestsToProcessInBulk = $numRequests;
        }

        // Queue.php:65
        public function getNumberOfRequestSetsInQueue()
        {
            return $this->backend->getNumValuesInList($this->key);
        }

        // Queue.php:70-80
        public function addRequestSet(RequestSet $requests)
        {
            if (!$requests->hasRequests()) {
                return;
            }
            $this->backend->appendValuesToList($this->key, [json_encode($requests->getState())]);
        }

        // Queue.php:82
        public function delete()
        {
            return $this->backend->delete($this->key);
        }

        // Queue.php:90-105: read, not removed
        public function getRequestSetsToProcess()
        {
            $sets = [];
            foreach ($this->backend->getFirstXValuesFromList($this->key, $this->numRequestsToProcessInBulk) as $value) {
                $set = new RequestSet();
                $set->restoreState(json_decode($value, true));
                $sets[] = $set;
            }
            return $sets;
        }

        // Queue.php:112
        public function markRequestSetsAsProcessed()
        {
            $this->backend->removeFirstXValuesFromList($this->key, $this->numRequestsToProcessInBulk);
        }
    }
}

namespace Piwik\Plugins\QueuedTracking\Queue {
    use MatomoStub\Stub;
    use Piwik\Config;
    use Piwik\Plugins\QueuedTracking\Queue;
    use Piwik\Tracker\RequestSet;

    class Factory
    {
        // Queue/Factory.php:23 (makeBackendFromSettings 55-84: a Redis backend unless
        // backend = mysql)
        public static function makeBackend()
        {
            Stub::call('QueuedTracking\Factory::makeBackend');
            $settings = Config::getInstance()->QueuedTracking;
            if (($settings['backend'] ?? 'redis') !== 'redis') {
                throw new \LogicException('stub: only the redis backend is stubbed');
            }
            return new Backend\Redis();
        }

        // Queue/Factory.php:30-39: numQueueWorkers and numRequestsToProcess from the
        // settings (a config value wins; the settings' defaults are 4 and 25)
        public static function makeQueueManager($backend)
        {
            $settings = Config::getInstance()->QueuedTracking;
            Stub::call('QueuedTracking\Factory::makeQueueManager', [(int) ($settings['numQueueWorkers'] ?? 4)]);
            $manager = new Manager($backend);
            $manager->setNumberOfAvailableQueues((int) ($settings['numQueueWorkers'] ?? 4));
            $manager->setNumberOfRequestsToProcessAtSameTime((int) ($settings['numRequestsToProcess'] ?? 25));
            return $manager;
        }
    }

    class Manager
    {
        private $backend;
        private $numQueuesAvailable = 4;
        private $numRequestsToProcessInBulk = 50;

        // Queue/Manager.php:70 (the lock is not used by what the script calls)
        public function __construct($backend)
        {
            $this->backend = $backend;
        }

        // Queue/Manager.php:81
        public function setNumberOfAvailableQueues($numQueues)
        {
            Stub::call('QueuedTracking\Manager::setNumberOfAvailableQueues', [(int) $numQueues]);
            $this->numQueuesAvailable = (int) $numQueues;
        }

        // Queue/Manager.php:123
        public function setNumberOfRequestsToProcessAtSameTime($numRequests)
        {
            $this->numRequestsToProcessInBulk = $numRequests;
        }

        // Queue/Manager.php:91-104: queues range(new, old) (old itself too, which is empty)
        public function moveSomeQueuesIfNeeded($newNumberOfAvailableWorkers, $oldNumberOfAvailableWorkers)
        {
            Stub::call('QueuedTracking\Manager::moveSomeQueuesIfNeeded', [$newNumberOfAvailableWorkers, $oldNumberOfAvailableWorkers]);
            if ($newNumberOfAvailableWorkers >= $oldNumberOfAvailableWorkers) {
                return false;
            }
            $this->setNumberOfAvailableQueues($newNumberOfAvailableWorkers);
            foreach (range($newNumberOfAvailableWorkers, $oldNumberOfAvailableWorkers) as $queueId) {
                // Queue/Manager.php:106-121: batch by batch, re-queued, then trimmed
                $queue = $this->createQueue($queueId);
                while ($requestSets = $queue->getRequestSetsToProcess()) {
                    foreach ($requestSets as $requestSet) {
                        $this->addRequestSetToQueues($requestSet);
                    }
                    $queue->markRequestSetsAsProcessed();
                }
                $queue->delete();
            }
            return true;
        }

        // Queue/Manager.php:133-155: each request to its visitor's queue
        public function addRequestSetToQueues(RequestSet $requestSet)
        {
            $queues = [];
            foreach ($requestSet->getRequests() as $request) {
                $queues[$this->getQueueIdForVisitor($this->getVisitorIdFromRequest($request))][] = $request;
            }
            foreach ($queues as $queueId => $requests) {
                $requestSet->setRequests($requests);
                $this->createQueue($queueId)->addRequestSet($requestSet);
            }
        }

        // Queue/Manager.php:176
        public function createQueue($id)
        {
            $queue = new Queue($this->backend, $id);
            $queue->setNumberOfRequestsToProcessAtSameTime($this->numRequestsToProcessInBulk);
            return $queue;
        }

        // Queue/Manager.php:197-213
        private function getVisitorIdFromRequest($request)
        {
            $visitorId = $request->getVisitorId();
            return empty($visitorId) ? md5($request->getIpString()) : bin2hex($visitorId);
        }

        // Queue/Manager.php:215-228: the first three characters, read as hex when they
        // are, otherwise the sum of their codes (a short id repeats its last character)
        protected function getQueueIdForVisitor($visitorId)
        {
            $head = strtolower(substr($visitorId, 0, 3));
            if ($head !== '' && ctype_xdigit($head)) {
                $number = hexdec($head);
            } else {
                $number = array_sum(array_map('ord', str_split(str_pad($head, 3, substr($head, -1) ?: "\0"))));
            }
            return $number % $this->numQueuesAvailable;
        }
    }
}

namespace {
    // core/bootstrap.php 14-16
    if (!defined('PIWIK_USER_PATH')) {
        define('PIWIK_USER_PATH', PIWIK_DOCUMENT_ROOT);
    }
    \MatomoStub\Stub::boot();
    define('STUB_CORE_VERSION', \MatomoStub\Stub::$state['core_version']);
    \MatomoStub\Stub::call('bootstrap', [PIWIK_DOCUMENT_ROOT, PIWIK_INCLUDE_PATH]);
}
