"""The serial board back end: wire protocol, transport, driver, board emulator, discovery.

``docs/protocol.md`` specifies the protocol; ``hw.board.Board`` implements
``controller.ports.SensorSource`` and ``Stimulator`` over it, and ``fes board-emulator``
(``hw.emulator`` running ``hw.firmware``) plays a board on a pseudo-terminal.
"""
