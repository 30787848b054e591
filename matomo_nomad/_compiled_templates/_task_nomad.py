# Compiled from matomo_nomad/templates/_task.nomad.tpl by `python -m matomo_nomad._templates`: do not edit.
# Used only while this is the .tpl's fingerprint (see _templates.py): jinja2 3.1.6 sha256 caf8577b564388a0d205c4c6822bd2088601432da700f2954e9a150f44e0c814
from jinja2.runtime import LoopContext, Macro, Markup, Namespace, TemplateNotFound, TemplateReference, TemplateRuntimeError, Undefined, escape, identity, internalcode, markup_join, missing, str_join
name = '_task.nomad.tpl'

def root(context, missing=missing, environment=environment):
    resolve = context.resolve_or_missing
    undefined = environment.undefined
    concat = environment.concat
    cond_expr_undefined = Undefined
    if 0: yield None
    l_0_job = resolve('job')
    l_0_task_attributes = resolve('task_attributes')
    l_0_docker_config = resolve('docker_config')
    l_0_config_template = resolve('config_template')
    l_0_config_destination = resolve('config_destination')
    l_0_config_target = resolve('config_target')
    l_0_secret_files = resolve('secret_files')
    l_0_env_template = resolve('env_template')
    l_0_env_destination = resolve('env_destination')
    l_0_env_perms = resolve('env_perms')
    l_0_resources = resolve('resources')
    try:
        t_1 = environment.filters['hcl']
    except KeyError:
        @internalcode
        def t_1(*unused):
            raise TemplateRuntimeError("No filter named 'hcl' found.")
    try:
        t_2 = environment.filters['hcl_attributes']
    except KeyError:
        @internalcode
        def t_2(*unused):
            raise TemplateRuntimeError("No filter named 'hcl_attributes' found.")
    try:
        t_3 = environment.filters['hcl_heredoc']
    except KeyError:
        @internalcode
        def t_3(*unused):
            raise TemplateRuntimeError("No filter named 'hcl_heredoc' found.")
    try:
        t_4 = environment.filters['list']
    except KeyError:
        @internalcode
        def t_4(*unused):
            raise TemplateRuntimeError("No filter named 'list' found.")
    pass
    yield '    task '
    yield str(t_1(environment.getattr((undefined(name='job') if l_0_job is missing else l_0_job), 'task')))
    yield ' {\n'
    yield str(t_2((undefined(name='task_attributes') if l_0_task_attributes is missing else l_0_task_attributes), 6))
    yield '\n\n      config {\n'
    yield str(t_2((undefined(name='docker_config') if l_0_docker_config is missing else l_0_docker_config), 8))
    yield '\n'
    if (undefined(name='config_template') if l_0_config_template is missing else l_0_config_template):
        pass
        yield '\n        # Read-only: with the complete plugin lists baked into the image and the\n        # database prepared by the setup job, no role has a reason to write it.\n        mount {\n          type     = "bind"\n          source   = '
        yield str(t_1((undefined(name='config_destination') if l_0_config_destination is missing else l_0_config_destination)))
        yield '\n          target   = '
        yield str(t_1((undefined(name='config_target') if l_0_config_target is missing else l_0_config_target)))
        yield '\n          readonly = true\n        }\n'
    yield '      }\n'
    if (undefined(name='config_template') if l_0_config_template is missing else l_0_config_template):
        pass
        yield '\n      # config.ini.php: secrets are read here at run time and never stored in the job.\n      template {\n        data                 = '
        yield str(t_3((undefined(name='config_template') if l_0_config_template is missing else l_0_config_template)))
        yield '\n        destination          = '
        yield str(t_1((undefined(name='config_destination') if l_0_config_destination is missing else l_0_config_destination)))
        yield '\n        change_mode          = "restart"\n        error_on_missing_key = true\n      }\n'
    for l_1_file in (undefined(name='secret_files') if l_0_secret_files is missing else l_0_secret_files):
        _loop_vars = {}
        pass
        yield '\n      # A secret as a file of its own, exactly as stored.\n      template {\n        data                 = '
        yield str(t_1(environment.getattr(l_1_file, 'template')))
        yield '\n        destination          = '
        yield str(t_1(environment.getattr(l_1_file, 'destination')))
        yield '\n        change_mode          = "noop"\n        error_on_missing_key = true\n        perms                = '
        yield str(t_1(environment.getattr(l_1_file, 'perms')))
        yield '\n      }\n'
    l_1_file = missing
    if (undefined(name='env_template') if l_0_env_template is missing else l_0_env_template):
        pass
        yield '\n      # Environment variables whose values are secrets: Nomad reads this file back as\n      # NAME="value" lines (go-envparse) and sets them; the job never holds the values.\n      template {\n        data                 = '
        yield str(t_3((undefined(name='env_template') if l_0_env_template is missing else l_0_env_template)))
        yield '\n        destination          = '
        yield str(t_1((undefined(name='env_destination') if l_0_env_destination is missing else l_0_env_destination)))
        yield '\n        env                  = true\n        change_mode          = "restart"\n        error_on_missing_key = true\n        perms                = '
        yield str(t_1((undefined(name='env_perms') if l_0_env_perms is missing else l_0_env_perms)))
        yield '\n      }\n'
    if ((environment.getattr(environment.getattr((undefined(name='job') if l_0_job is missing else l_0_job), 'secrets'), 'provider') == 'vault') and environment.getattr((undefined(name='job') if l_0_job is missing else l_0_job), 'secret_keys')):
        pass
        yield '\n      vault {\n'
        if environment.getattr(environment.getattr((undefined(name='job') if l_0_job is missing else l_0_job), 'secrets'), 'vault_role'):
            pass
            yield '        role = '
            yield str(t_1(environment.getattr(environment.getattr((undefined(name='job') if l_0_job is missing else l_0_job), 'secrets'), 'vault_role')))
            yield '\n'
        if environment.getattr(environment.getattr((undefined(name='job') if l_0_job is missing else l_0_job), 'secrets'), 'vault_policies'):
            pass
            yield '        policies = '
            yield str(t_1(t_4(context.eval_ctx, environment.getattr(environment.getattr((undefined(name='job') if l_0_job is missing else l_0_job), 'secrets'), 'vault_policies'))))
            yield '\n'
        yield '      }\n'
    if environment.getattr((undefined(name='job') if l_0_job is missing else l_0_job), 'env'):
        pass
        yield '\n      env {\n'
        yield str(t_2(environment.getattr((undefined(name='job') if l_0_job is missing else l_0_job), 'env'), 8))
        yield '\n      }\n'
    yield '\n      resources {\n'
    yield str(t_2((undefined(name='resources') if l_0_resources is missing else l_0_resources), 8))
    yield '\n      }\n    }\n'

blocks = {}
debug_info = '1=49&2=51&5=53&6=55&12=58&13=60&18=63&22=66&23=68&28=70&32=74&33=76&36=78&39=81&44=84&45=86&49=88&52=90&55=93&56=96&58=98&59=101&63=104&66=107&71=110'
