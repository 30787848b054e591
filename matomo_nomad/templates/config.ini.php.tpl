[#- config.ini.php for one role, as consul-template source. The first line defines the
    helper that encodes secrets for Matomo's INI reader at run time; then the file is
    rendered inside the block that reads the secret store. -#]
[[ encoder ]]
[[ secrets_opening ]]
; <?php exit; ?> DO NOT REMOVE THIS LINE
; Matomo configuration for [[ job_id ]], rendered by matomo-nomad [[ version ]].
; Change the deployment file, not this text: it is regenerated on every render.
[% for section in sections %]

[[ '[' ~ section.name ~ ']' ]]
[% for line in section.lines %]
[[ line ]]
[% endfor %]
[% endfor %]
{{ end -}}
