"""The sweep engine: joins many agent sessions in one process, without an operator.

* :mod:`.engine` — worker threads, pacing, the deadline, duplicates and the outcome of what was not sent;
* :mod:`.result` — the sweep's result: one typed, versioned schema, written by the engine and read by the
  mapped merge and the UI;
* :mod:`.pacing`, :mod:`.checkpoint`, :mod:`.report`, :mod:`.storage` — what the engine paces with, resumes
  from and writes its every outcome to.

:class:`~cxone_provider.operators.sweep.JoinAgentSessionsOperator` wires Airflow's context, XCom and
reports to it.
"""
