# Compiled from matomo_nomad/templates/service.nomad.tpl by `python -m matomo_nomad._templates`: do not edit.
# Used only while this is the .tpl's fingerprint (see _templates.py): jinja2 3.1.6 sha256 b62e44faef3c5a14fcc6533b8bc8b4e10557df80d2ad2b454f358c7cf5d1fc07
from jinja2.runtime import LoopContext, Macro, Markup, Namespace, TemplateNotFound, TemplateReference, TemplateRuntimeError, Undefined, escape, identity, internalcode, markup_join, missing, str_join
name = 'service.nomad.tpl'

def root(context, missing=missing, environment=environment):
    resolve = context.resolve_or_missing
    undefined = environment.undefined
    concat = environment.concat
    cond_expr_undefined = Undefined
    if 0: yield None
    l_0_job = resolve('job')
    l_0_health_check = resolve('health_check')
    l_0_container_port = resolve('container_port')
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
    pass
    yield 'job '
    yield str(t_1(environment.getattr((undefined(name='job') if l_0_job is missing else l_0_job), 'job_id')))
    yield ' {\n  type        = "service"\n  region      = '
    yield str(t_1(environment.getattr((undefined(name='job') if l_0_job is missing else l_0_job), 'region')))
    yield '\n  namespace   = '
    yield str(t_1(environment.getattr((undefined(name='job') if l_0_job is missing else l_0_job), 'namespace')))
    yield '\n  datacenters = '
    yield str(t_1(environment.getattr((undefined(name='job') if l_0_job is missing else l_0_job), 'datacenters')))
    yield '\n  node_pool   = '
    yield str(t_1(environment.getattr((undefined(name='job') if l_0_job is missing else l_0_job), 'node_pool')))
    yield '\n  priority    = '
    yield str(t_1(environment.getattr((undefined(name='job') if l_0_job is missing else l_0_job), 'priority')))
    yield '\n\n  meta {\n'
    yield str(t_2(environment.getattr((undefined(name='job') if l_0_job is missing else l_0_job), 'meta'), 4))
    yield '\n  }\n\n  group '
    yield str(t_1(environment.getattr((undefined(name='job') if l_0_job is missing else l_0_job), 'group')))
    yield ' {\n    count = '
    yield str(t_1(environment.getattr((undefined(name='job') if l_0_job is missing else l_0_job), 'count')))
    yield '\n'
    template = environment.get_template('_constraints.nomad.tpl', 'service.nomad.tpl')
    gen = template.root_render_func(template.new_context(context.get_all(), True, {}))
    try:
        for event in gen:
            yield event
    finally: gen.close()
    if environment.getattr((undefined(name='job') if l_0_job is missing else l_0_job), 'update'):
        pass
        yield '\n    update {\n      max_parallel      = '
        yield str(t_1(environment.getattr(environment.getattr((undefined(name='job') if l_0_job is missing else l_0_job), 'update'), 'max_parallel')))
        yield '\n      health_check      = '
        yield str(t_1((undefined(name='health_check') if l_0_health_check is missing else l_0_health_check)))
        yield '\n      min_healthy_time  = '
        yield str(t_1(environment.getattr(environment.getattr((undefined(name='job') if l_0_job is missing else l_0_job), 'update'), 'min_healthy_time')))
        yield '\n      healthy_deadline  = '
        yield str(t_1(environment.getattr(environment.getattr((undefined(name='job') if l_0_job is missing else l_0_job), 'update'), 'healthy_deadline')))
        yield '\n      progress_deadline = '
        yield str(t_1(environment.getattr(environment.getattr((undefined(name='job') if l_0_job is missing else l_0_job), 'update'), 'progress_deadline')))
        yield '\n      auto_revert       = '
        yield str(t_1(environment.getattr(environment.getattr((undefined(name='job') if l_0_job is missing else l_0_job), 'update'), 'auto_revert')))
        yield '\n      auto_promote      = '
        yield str(t_1(environment.getattr(environment.getattr((undefined(name='job') if l_0_job is missing else l_0_job), 'update'), 'auto_promote')))
        yield '\n      canary            = '
        yield str(t_1(environment.getattr(environment.getattr((undefined(name='job') if l_0_job is missing else l_0_job), 'update'), 'canary')))
        yield '\n    }\n'
    if environment.getattr((undefined(name='job') if l_0_job is missing else l_0_job), 'port'):
        pass
        yield '\n    network {\n      port '
        yield str(t_1(environment.getattr((undefined(name='job') if l_0_job is missing else l_0_job), 'port')))
        yield ' {\n        to = '
        yield str(t_1((undefined(name='container_port') if l_0_container_port is missing else l_0_container_port)))
        yield '\n      }\n    }\n'
    if environment.getattr((undefined(name='job') if l_0_job is missing else l_0_job), 'service'):
        pass
        yield '\n    service {\n      name     = '
        yield str(t_1(environment.getattr(environment.getattr((undefined(name='job') if l_0_job is missing else l_0_job), 'service'), 'name')))
        yield '\n      provider = '
        yield str(t_1(environment.getattr(environment.getattr((undefined(name='job') if l_0_job is missing else l_0_job), 'service'), 'provider')))
        yield '\n      port     = '
        yield str(t_1(environment.getattr(environment.getattr((undefined(name='job') if l_0_job is missing else l_0_job), 'service'), 'port')))
        yield '\n      tags     = '
        yield str(t_1(environment.getattr(environment.getattr((undefined(name='job') if l_0_job is missing else l_0_job), 'service'), 'tags')))
        yield '\n'
        if environment.getattr(environment.getattr((undefined(name='job') if l_0_job is missing else l_0_job), 'service'), 'check'):
            pass
            yield '\n      check {\n        type     = "http"\n        path     = '
            yield str(t_1(environment.getattr(environment.getattr(environment.getattr((undefined(name='job') if l_0_job is missing else l_0_job), 'service'), 'check'), 'path')))
            yield '\n        interval = '
            yield str(t_1(environment.getattr(environment.getattr(environment.getattr((undefined(name='job') if l_0_job is missing else l_0_job), 'service'), 'check'), 'interval')))
            yield '\n        timeout  = '
            yield str(t_1(environment.getattr(environment.getattr(environment.getattr((undefined(name='job') if l_0_job is missing else l_0_job), 'service'), 'check'), 'timeout')))
            yield '\n'
            if environment.getattr(environment.getattr(environment.getattr((undefined(name='job') if l_0_job is missing else l_0_job), 'service'), 'check'), 'headers'):
                pass
                yield '\n        header {\n'
                yield str(t_2(environment.getattr(environment.getattr(environment.getattr((undefined(name='job') if l_0_job is missing else l_0_job), 'service'), 'check'), 'headers'), 10))
                yield '\n        }\n'
            yield '      }\n'
        yield '    }\n'
    yield '\n    restart {\n      attempts = '
    yield str(t_1(environment.getattr(environment.getattr((undefined(name='job') if l_0_job is missing else l_0_job), 'restart'), 'attempts')))
    yield '\n      interval = '
    yield str(t_1(environment.getattr(environment.getattr((undefined(name='job') if l_0_job is missing else l_0_job), 'restart'), 'interval')))
    yield '\n      delay    = '
    yield str(t_1(environment.getattr(environment.getattr((undefined(name='job') if l_0_job is missing else l_0_job), 'restart'), 'delay')))
    yield '\n      mode     = '
    yield str(t_1(environment.getattr(environment.getattr((undefined(name='job') if l_0_job is missing else l_0_job), 'restart'), 'mode')))
    yield '\n    }\n'
    template = environment.get_template('_reschedule.nomad.tpl', 'service.nomad.tpl')
    gen = template.root_render_func(template.new_context(context.get_all(), True, {}))
    try:
        for event in gen:
            yield event
    finally: gen.close()
    yield '\n'
    template = environment.get_template('_task.nomad.tpl', 'service.nomad.tpl')
    gen = template.root_render_func(template.new_context(context.get_all(), True, {}))
    try:
        for event in gen:
            yield event
    finally: gen.close()
    yield '  }\n}\n'

blocks = {}
debug_info = '4=29&6=31&7=33&8=35&9=37&10=39&13=41&16=43&17=45&18=47&19=53&22=56&23=58&24=60&25=62&26=64&27=66&28=68&29=70&32=72&35=75&36=77&40=79&43=82&44=84&45=86&46=88&47=90&51=93&52=95&53=97&54=99&57=102&66=107&67=109&68=111&69=113&71=115&73=122'
