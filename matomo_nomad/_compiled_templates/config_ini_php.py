# Compiled from matomo_nomad/templates/config.ini.php.tpl by `python -m matomo_nomad._templates`: do not edit.
# Used only while this is the .tpl's fingerprint (see _templates.py): jinja2 3.1.6 sha256 ca97c099cc798e96f172f8dec16cecf1e27ea0e017202fda429f48e2c62a1bee
from jinja2.runtime import LoopContext, Macro, Markup, Namespace, TemplateNotFound, TemplateReference, TemplateRuntimeError, Undefined, escape, identity, internalcode, markup_join, missing, str_join
name = 'config.ini.php.tpl'

def root(context, missing=missing, environment=environment):
    resolve = context.resolve_or_missing
    undefined = environment.undefined
    concat = environment.concat
    cond_expr_undefined = Undefined
    if 0: yield None
    l_0_encoder = resolve('encoder')
    l_0_secrets_opening = resolve('secrets_opening')
    l_0_job_id = resolve('job_id')
    l_0_version = resolve('version')
    l_0_sections = resolve('sections')
    pass
    yield str((undefined(name='encoder') if l_0_encoder is missing else l_0_encoder))
    yield '\n'
    yield str((undefined(name='secrets_opening') if l_0_secrets_opening is missing else l_0_secrets_opening))
    yield '\n; <?php exit; ?> DO NOT REMOVE THIS LINE\n; Matomo configuration for '
    yield str((undefined(name='job_id') if l_0_job_id is missing else l_0_job_id))
    yield ', rendered by matomo-nomad '
    yield str((undefined(name='version') if l_0_version is missing else l_0_version))
    yield '.\n; Change the deployment file, not this text: it is regenerated on every render.\n'
    for l_1_section in (undefined(name='sections') if l_0_sections is missing else l_0_sections):
        _loop_vars = {}
        pass
        yield '\n'
        yield str(str_join(('[', environment.getattr(l_1_section, 'name'), ']', )))
        yield '\n'
        for l_2_line in environment.getattr(l_1_section, 'lines'):
            _loop_vars = {}
            pass
            yield str(l_2_line)
            yield '\n'
        l_2_line = missing
    l_1_section = missing
    yield '{{ end -}}\n'

blocks = {}
debug_info = '4=18&5=20&7=22&9=26&11=30&12=32&13=35'
