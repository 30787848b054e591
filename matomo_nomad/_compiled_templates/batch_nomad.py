# Compiled from matomo_nomad/templates/batch.nomad.tpl by `python -m matomo_nomad._templates`: do not edit.
# Used only while this is the .tpl's fingerprint (see _templates.py): jinja2 3.1.6 sha256 14367a97f70480756f1acd473aac8a858231160e48e88a5cba4427a72f16566d
from jinja2.runtime import LoopContext, Macro, Markup, Namespace, TemplateNotFound, TemplateReference, TemplateRuntimeError, Undefined, escape, identity, internalcode, markup_join, missing, str_join
name = 'batch.nomad.tpl'

def root(context, missing=missing, environment=environment):
    resolve = context.resolve_or_missing
    undefined = environment.undefined
    concat = environment.concat
    cond_expr_undefined = Undefined
    if 0: yield None
    l_0_job = resolve('job')
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
    yield ' {\n  type        = "batch"\n  region      = '
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
    yield '\n  }\n'
    if environment.getattr((undefined(name='job') if l_0_job is missing else l_0_job), 'periodic'):
        pass
        yield '\n  periodic {\n    cron             = '
        yield str(t_1(environment.getattr(environment.getattr((undefined(name='job') if l_0_job is missing else l_0_job), 'periodic'), 'cron')))
        yield '\n    time_zone        = '
        yield str(t_1(environment.getattr(environment.getattr((undefined(name='job') if l_0_job is missing else l_0_job), 'periodic'), 'time_zone')))
        yield '\n    prohibit_overlap = '
        yield str(t_1(environment.getattr(environment.getattr((undefined(name='job') if l_0_job is missing else l_0_job), 'periodic'), 'prohibit_overlap')))
        yield '\n  }\n'
    yield '\n  group '
    yield str(t_1(environment.getattr((undefined(name='job') if l_0_job is missing else l_0_job), 'group')))
    yield ' {\n    count = 1\n'
    template = environment.get_template('_constraints.nomad.tpl', 'batch.nomad.tpl')
    gen = template.root_render_func(template.new_context(context.get_all(), True, {}))
    try:
        for event in gen:
            yield event
    finally: gen.close()
    yield '\n    restart {\n      attempts = '
    yield str(t_1(environment.getattr(environment.getattr((undefined(name='job') if l_0_job is missing else l_0_job), 'restart'), 'attempts')))
    yield '\n      interval = '
    yield str(t_1(environment.getattr(environment.getattr((undefined(name='job') if l_0_job is missing else l_0_job), 'restart'), 'interval')))
    yield '\n      delay    = '
    yield str(t_1(environment.getattr(environment.getattr((undefined(name='job') if l_0_job is missing else l_0_job), 'restart'), 'delay')))
    yield '\n      mode     = '
    yield str(t_1(environment.getattr(environment.getattr((undefined(name='job') if l_0_job is missing else l_0_job), 'restart'), 'mode')))
    yield '\n    }\n'
    template = environment.get_template('_reschedule.nomad.tpl', 'batch.nomad.tpl')
    gen = template.root_render_func(template.new_context(context.get_all(), True, {}))
    try:
        for event in gen:
            yield event
    finally: gen.close()
    yield '\n'
    template = environment.get_template('_task.nomad.tpl', 'batch.nomad.tpl')
    gen = template.root_render_func(template.new_context(context.get_all(), True, {}))
    try:
        for event in gen:
            yield event
    finally: gen.close()
    yield '  }\n}\n'

blocks = {}
debug_info = '5=27&7=29&8=31&9=33&10=35&11=37&14=39&16=41&19=44&20=46&21=48&25=51&27=53&30=60&31=62&32=64&33=66&35=68&37=75'
