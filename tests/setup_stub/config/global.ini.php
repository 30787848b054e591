; <?php exit; ?> DO NOT REMOVE THIS LINE
; The stub's stand-in for Matomo 5.1.2 config/global.ini.php: only the keys the setup
; script and the stub read (the real [database] starts at line 14, collation at 54).

[database]
host =
username =
password =
dbname =
tables_prefix =
port = 3306
adapter = PDO\MYSQL
charset = utf8
collation =

[General]
enable_users_admin = 1
enable_sites_admin = 1

[Plugins]
Plugins[] = CorePluginsAdmin

[PluginsInstalled]
PluginsInstalled[] = CorePluginsAdmin
