"""Streamlit helpers shared by the pages, one job per module:

    state     every st.session_state key, and the draft run config the pages fill in
    cached    st.cache_resource / st.cache_data wrappers of core calls, and their cache keys
    widgets   form fields, run pickers, errors, flash messages, run states
    charts    Altair curves, image tiles and galleries, chart selections
    sharing   settings in the URL, report downloads

Logic a CLI user would also want lives in `cvdemo`, not here. Importing this package first makes sure the
router serves the page (see routing.py).
"""

from pages.ui.routing import use_the_router

use_the_router()
