from z2m_qbkg40lm.cli import main

raise SystemExit(main())
