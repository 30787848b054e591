; <?php exit; ?> DO NOT REMOVE THIS LINE
; file automatically generated or modified by Matomo; you can manually override the default values in global.ini.php by redefining them in this file.
[database]
host = "mysql-primary.db.example.net"
username = "matomo_app"
password = "c0rr&amp;ct-h0rse&quot;b&#36;ttery\stable;&lt;&gt;"
dbname = "matomo5"
tables_prefix = "mtm_"
port = 3307
adapter = "MYSQLI"
type = "InnoDB"
schema = "Mysql"
charset = "utf8mb4"
collation = "utf8mb4_0900_ai_ci"
enable_ssl = 1
ssl_ca = "/etc/ssl/certs/db-ca.pem"
ssl_no_verify = 0

[database_reader]
host = "mysql-replica.db.example.net"
username = "matomo_ro"
password = "r3ad-&Uuml;nly"
dbname = "matomo5"
port = 3307

[General]
salt = "f3a9c1e07b2d4f6a8c0e1b3d5f7a9c2e"
trusted_hosts[] = "matomo.example.net"
trusted_hosts[] = "stats.example.net"
proxy_client_headers[] = "HTTP_CF_CONNECTING_IP"
proxy_client_headers[] = "HTTP_X_FORWARDED_FOR"
proxy_ips[] = "10.0.0.0/8"
proxy_ips[] = "192.168.10.5"
proxy_ip_read_last_in_list = 0
force_ssl = 1
enable_auto_update = 0
multi_server_environment = 0
browser_archiving_disabled_enforce = 1
enable_browser_archiving_triggering = 0
enable_general_settings_admin = 1
login_allow_logme = 0
enable_framed_pages = 0
enable_trusted_host_check = 1
datatable_archiving_maximum_rows_products = 10000
archiving_custom_ranges[] = "last7"
archiving_custom_ranges[] = "previous30"
process_new_segments_from = "last6"
noreply_email_address = "matomo@example.net"
noreply_email_name = "Matomo &amp;amp; &laquo;Stats&raquo;"
instance_id = "prod-eu"
enable_segments_cache = 1
time_before_today_archive_considered_outdated = 1800
anonymous_user_enable_use_segments_API = 0

[Tracker]
ignore_visits_cookie_name = "_matomo_ignore"
bulk_requests_use_transaction = 1
innodb_lock_wait_timeout = 5
page_maximum_length = 2048

[Cache]
backend = "redis"

[RedisCache]
host = "redis-cache.example.net"
port = 6380
timeout = 0.5
password = "c&amp;che-p&#36;ss"
database = 14

[QueuedTracking]
backend = "redis"
redisHost = "redis-queue.example.net"
redisPort = 6379
redisTimeout = 0.0
redisDatabase = 2
redisPassword = "qu&#36;ue&amp;amp;pass"
queueEnabled = 1
numQueueWorkers = 4
numRequestsToProcess = 50
processDuringTrackingRequest = 1

[log]
log_writers[] = "screen"
log_writers[] = "syslog"
log_level = "INFO"

[mail]
transport = "smtp"
port = 465
host = "smtp.example.net"
type = "Plain"
username = "matomo@example.net"
password = "m&#36;il"
encryption = "ssl"

[Deletelogs]
delete_logs_enable = 1
delete_logs_older_than = 730

[HeatmapSessionRecording]
add_tracking_code_only_when_heatmap_or_session_recording_configured = 1

[PluginsInstalled]
PluginsInstalled[] = "Diagnostics"
PluginsInstalled[] = "Login"
PluginsInstalled[] = "CoreAdminHome"
PluginsInstalled[] = "UsersManager"
PluginsInstalled[] = "SitesManager"
PluginsInstalled[] = "Installation"
PluginsInstalled[] = "Monolog"
PluginsInstalled[] = "Intl"
PluginsInstalled[] = "JsTrackerInstallCheck"
PluginsInstalled[] = "CorePluginsAdmin"
PluginsInstalled[] = "CoreHome"
PluginsInstalled[] = "WebsiteMeasurable"
PluginsInstalled[] = "IntranetMeasurable"
PluginsInstalled[] = "CoreVisualizations"
PluginsInstalled[] = "Proxy"
PluginsInstalled[] = "API"
PluginsInstalled[] = "Widgetize"
PluginsInstalled[] = "Transitions"
PluginsInstalled[] = "LanguagesManager"
PluginsInstalled[] = "Actions"
PluginsInstalled[] = "Dashboard"
PluginsInstalled[] = "MultiSites"
PluginsInstalled[] = "Referrers"
PluginsInstalled[] = "UserLanguage"
PluginsInstalled[] = "DevicesDetection"
PluginsInstalled[] = "Goals"
PluginsInstalled[] = "Ecommerce"
PluginsInstalled[] = "SEO"
PluginsInstalled[] = "Events"
PluginsInstalled[] = "UserCountry"
PluginsInstalled[] = "GeoIp2"
PluginsInstalled[] = "VisitsSummary"
PluginsInstalled[] = "VisitFrequency"
PluginsInstalled[] = "VisitTime"
PluginsInstalled[] = "VisitorInterest"
PluginsInstalled[] = "RssWidget"
PluginsInstalled[] = "Feedback"
PluginsInstalled[] = "TwoFactorAuth"
PluginsInstalled[] = "CoreUpdater"
PluginsInstalled[] = "CoreConsole"
PluginsInstalled[] = "ScheduledReports"
PluginsInstalled[] = "UserCountryMap"
PluginsInstalled[] = "Live"
PluginsInstalled[] = "PrivacyManager"
PluginsInstalled[] = "ImageGraph"
PluginsInstalled[] = "Annotations"
PluginsInstalled[] = "MobileMessaging"
PluginsInstalled[] = "Overlay"
PluginsInstalled[] = "SegmentEditor"
PluginsInstalled[] = "Insights"
PluginsInstalled[] = "Morpheus"
PluginsInstalled[] = "Contents"
PluginsInstalled[] = "BulkTracking"
PluginsInstalled[] = "Resolution"
PluginsInstalled[] = "DevicePlugins"
PluginsInstalled[] = "Heartbeat"
PluginsInstalled[] = "Marketplace"
PluginsInstalled[] = "ProfessionalServices"
PluginsInstalled[] = "UserId"
PluginsInstalled[] = "CustomJsTracker"
PluginsInstalled[] = "Tour"
PluginsInstalled[] = "PagePerformance"
PluginsInstalled[] = "CustomDimensions"
PluginsInstalled[] = "QueuedTracking"
PluginsInstalled[] = "CustomAlerts"
PluginsInstalled[] = "HeatmapSessionRecording"
PluginsInstalled[] = "SecurityInfo"

[Plugins]
Plugins[] = "CorePluginsAdmin"
Plugins[] = "CoreAdminHome"
Plugins[] = "CoreHome"
Plugins[] = "WebsiteMeasurable"
Plugins[] = "IntranetMeasurable"
Plugins[] = "Diagnostics"
Plugins[] = "CoreVisualizations"
Plugins[] = "Proxy"
Plugins[] = "API"
Plugins[] = "Widgetize"
Plugins[] = "Transitions"
Plugins[] = "LanguagesManager"
Plugins[] = "Actions"
Plugins[] = "Dashboard"
Plugins[] = "MultiSites"
Plugins[] = "Referrers"
Plugins[] = "UserLanguage"
Plugins[] = "DevicesDetection"
Plugins[] = "Goals"
Plugins[] = "Ecommerce"
Plugins[] = "SEO"
Plugins[] = "Events"
Plugins[] = "UserCountry"
Plugins[] = "GeoIp2"
Plugins[] = "VisitsSummary"
Plugins[] = "VisitFrequency"
Plugins[] = "VisitTime"
Plugins[] = "VisitorInterest"
Plugins[] = "RssWidget"
Plugins[] = "Feedback"
Plugins[] = "Monolog"
Plugins[] = "Login"
Plugins[] = "TwoFactorAuth"
Plugins[] = "UsersManager"
Plugins[] = "SitesManager"
Plugins[] = "Installation"
Plugins[] = "CoreUpdater"
Plugins[] = "CoreConsole"
Plugins[] = "ScheduledReports"
Plugins[] = "UserCountryMap"
Plugins[] = "Live"
Plugins[] = "PrivacyManager"
Plugins[] = "ImageGraph"
Plugins[] = "Annotations"
Plugins[] = "MobileMessaging"
Plugins[] = "Overlay"
Plugins[] = "SegmentEditor"
Plugins[] = "Insights"
Plugins[] = "Morpheus"
Plugins[] = "Contents"
Plugins[] = "BulkTracking"
Plugins[] = "Resolution"
Plugins[] = "DevicePlugins"
Plugins[] = "Heartbeat"
Plugins[] = "Intl"
Plugins[] = "Marketplace"
Plugins[] = "ProfessionalServices"
Plugins[] = "UserId"
Plugins[] = "CustomJsTracker"
Plugins[] = "Tour"
Plugins[] = "PagePerformance"
Plugins[] = "CustomDimensions"
Plugins[] = "JsTrackerInstallCheck"
Plugins[] = "QueuedTracking"
Plugins[] = "CustomAlerts"
Plugins[] = "HeatmapSessionRecording"
Plugins[] = "SecurityInfo"
