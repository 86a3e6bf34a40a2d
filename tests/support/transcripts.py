"""Italian transcripts of a few topics, for the taggers' tests."""

from __future__ import annotations

TRANSCRIPTS = {
    "weather": (
        "Buongiorno a tutti. Oggi a Roma il tempo è piuttosto instabile: le previsioni meteo "
        "indicano pioggia nel pomeriggio e temporali in serata. La protezione civile ha "
        "diramato un'allerta meteo gialla per tutto il Lazio. Domani il tempo dovrebbe "
        "migliorare, con il ritorno del sole su Roma e temperature in aumento."
    ),
    "football": (
        "Grande vittoria della Juventus contro l'Inter nel derby d'Italia. La partita è "
        "finita due a uno: Vlahović ha segnato il primo gol al ventesimo minuto, poi l'Inter "
        "ha pareggiato su rigore. Nel secondo tempo la Juventus ha trovato il gol della "
        "vittoria con un colpo di testa. L'allenatore della Juventus si è detto soddisfatto."
    ),
    "recipe": (
        "Oggi prepariamo la carbonara, la ricetta romana più famosa. Servono spaghetti, "
        "guanciale, uova, pecorino romano e pepe nero. Tagliate il guanciale a listarelle e "
        "fatelo rosolare in padella. Intanto sbattete i tuorli con il pecorino. Scolate gli "
        "spaghetti al dente e mescolate tutto fuori dal fuoco, così la carbonara resta cremosa."
    ),
    # Unpunctuated, lowercase, as speech often comes out.
    "school": (
        "allora ragazzi domani c'è la verifica di matematica quindi mi raccomando ripassate "
        "le equazioni di secondo grado e i sistemi lineari la verifica dura due ore e potete "
        "usare la calcolatrice ma non il telefono"
    ),
    "ai": (
        "L'intelligenza artificiale sta cambiando il mondo del lavoro. Secondo un nuovo "
        "rapporto, entro il 2030 l'intelligenza artificiale potrebbe automatizzare molte "
        "attività ripetitive negli uffici. I sindacati chiedono regole chiare e investimenti "
        "nella formazione dei lavoratori. Il governo ha annunciato un piano da due miliardi "
        "per la formazione digitale."
    ),
}
