# Compiled from matomo_nomad/templates/setup.nomad.tpl by `python -m matomo_nomad._templates`: do not edit.
# Used only while this is the .tpl's fingerprint (see _templates.py): jinja2 3.1.6 sha256 690e2e33e688b6861bc778cbbecc62843403efb1cf6d452593bb72cef98e0cf6
from jinja2.runtime import LoopContext, Macro, Markup, Namespace, TemplateNotFound, TemplateReference, TemplateRuntimeError, Undefined, escape, identity, internalcode, markup_join, missing, str_join
name = 'setup.nomad.tpl'

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
    yield '\n  }\n\n  group '
    yield str(t_1(environment.getattr((undefined(name='job') if l_0_job is missing else l_0_job), 'group')))
    yield ' {\n    count = 1\n'
    template = environment.get_template('_constraints.nomad.tpl', 'setup.nomad.tpl')
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
    template = environment.get_template('_reschedule.nomad.tpl', 'setup.nomad.tpl')
    gen = template.root_render_func(template.new_context(context.get_all(), True, {}))
    try:
        for event in gen:
            yield event
    finally: gen.close()
    yield '\n'
    template = environment.get_template('_task.nomad.tpl', 'setup.nomad.tpl')
    gen = template.root_render_func(template.new_context(context.get_all(), True, {}))
    try:
        for event in gen:
            yield event
    finally: gen.close()
    yield '  }\n}\n'

blocks = {}
debug_info = '4=27&6=29&7=31&8=33&9=35&10=37&13=39&16=41&18=43&21=50&22=52&23=54&24=56&26=58&28=65'
