"""Tests for parsers.strip: reply stripping against real-looking client fixtures."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from maild.parsers.strip import strip_reply

MAIL = Path(__file__).resolve().parents[2] / "fixtures" / "mail"


def fixture_text(name: str) -> str:
    """The best text body of a fixture, as the stdlib reads it."""
    message = email.message_from_bytes((MAIL / name).read_bytes(), policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    body = message.get_body(preferencelist=("plain", "html"))
    assert body is not None
    return body.get_content()


EXACT = [
    (
        "reply-gmail-ptbr.eml",
        "Bom dia,\n\nO erro continua aparecendo quando tento emitir a nota fiscal. Segue o print\n"
        "da tela em anexo.\n\nObrigada,\nMaria",
    ),
    (
        "reply-gmail-en.eml",
        'Hi,\n\nIt still fails after the update. The log says "connection refused".\n\n'
        "Thanks,\nJohn",
    ),
    (
        "reply-outlook-desktop-ptbr.eml",
        "Boa tarde,\n\nConseguimos emitir a nota agora, obrigado pela ajuda. "
        "Só falta a correção do\nendereço de cobrança.\n\nAtenciosamente,\n\nJosé Araújo\n"
        "Financeiro | Exemplo Comércio Ltda.\n(11) 5555-0142",
    ),
    (
        "reply-outlook-desktop-en.eml",
        "Hello,\n\nPlease cancel the second invoice, it was issued twice by mistake.\n\n"
        "Regards,\nLinda Park\nAccounts Payable",
    ),
    (
        "reply-outlook-web-en.eml",
        "Hi team,\n\nThe export works now. You can close the ticket.\n\nBest,\nPriya",
    ),
    ("reply-outlook-android-ptbr.eml", "Pode fechar, resolvido."),
    (
        "reply-apple-mail-ptbr.eml",
        "Oi, pessoal.\n\nTestei de novo no Safari e o botão “Salvar” não responde.\n\n"
        "Abraços,\nFernanda",
    ),
    (
        "reply-thunderbird-ptbr.eml",
        "Olá,\n\nSegue a informação pedida: versão 4.2.1, Windows 11, o erro aparece só no\n"
        "relatório mensal.\n\nPaulo",
    ),
    ("reply-iphone-ptbr.eml", "Ok, amanhã cedo eu testo e aviso."),
    (
        "reply-android-samsung-ptbr.eml",
        "Bom dia. O problema voltou hoje de manhã, mesmo depois de reiniciar.",
    ),
    ("reply-above-separator.eml", "Obrigado, funcionou!"),
    (
        "reply-signature-dash.eml",
        "Hi,\n\nAttached is the screenshot you asked for. The error shows at step 3.",
    ),
    (
        "reply-inline-interleaved.eml",
        "Olá, respondo entre as linhas.\n\n> Qual a versão do sistema instalada?\n\n"
        "Versão 4.2.1.\n\n> O erro acontece com todos os usuários ou só com um?\n\n"
        "Só com o usuário do financeiro.",
    ),
    (
        "forward-gmail-en.eml",
        "Please open a ticket for this customer, she called us too.\n\n"
        "---------- Forwarded message ---------\n"
        "From: Maria Souza <maria.souza@example.org>\nDate: Mon, Mar 2, 2026 at 8:40 AM\n"
        "Subject: Boleto com valor errado\nTo: Pedro Santos <pedro@example.com>\n\n"
        "Bom dia Pedro,\n\nO boleto de março veio com o valor de fevereiro. Podem verificar?"
        "\n\nMaria",
    ),
    (
        "forward-apple-mail-ptbr.eml",
        "Segue a reclamação do cliente, pode abrir o chamado no nome dele?\n\nBeatriz\n\n"
        "Início da mensagem encaminhada:\n\nDe: Otávio Nunes <otavio.nunes@example.org>\n"
        "Assunto: Pedido 4471 não entregue\nData: 1 de março de 2026 às 19:22:10 BRT\n"
        "Para: Beatriz Melo <beatriz@example.com>\n\nOlá, meu pedido 4471 ainda não chegou e "
        "o rastreio não atualiza desde quinta.\n\nOtávio",
    ),
    ("forward-attached-rfc822.eml", "Segue em anexo o e-mail do cliente pedindo a 2ª via."),
]


@pytest.mark.parametrize(("name", "expected"), EXACT, ids=[name for name, _ in EXACT])
def test_fixture_stripped_exactly(name: str, expected: str) -> None:
    assert strip_reply(fixture_text(name)) == expected


# Whatever the client, none of our own outbound text may survive stripping.
LONG_SENTENCE = (
    "Enviado do meu computador do trabalho o arquivo que vocês pediram ontem à tarde, confiram"
)

OUR_TEXT = (
    "Responda acima",
    "Please type your reply",
    "Ref: MAILD",
    "Acme Sup",
    "escreveu:",
    "wrote:",
)


@pytest.mark.parametrize("path", sorted(MAIL.glob("reply-*.eml")), ids=lambda p: p.name)
def test_no_history_survives(path: Path) -> None:
    stripped = strip_reply(fixture_text(path.name))
    assert stripped
    for fragment in OUR_TEXT:
        assert fragment not in stripped


def test_forward_without_comment_keeps_the_whole_text() -> None:
    text = fixture_text("forward-outlook-ptbr.eml")
    stripped = strip_reply(text)
    assert stripped == text.strip()
    assert stripped.startswith("-----Mensagem encaminhada-----")
    assert "Fui cobrado duas vezes" in stripped


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # our separator, both languages, everything below goes
        ("Oi\n##- Responda acima desta linha -##\nnosso texto", "Oi"),
        ("Hi\n\n##- Please type your reply above this line -##\nour text", "Hi"),
        # attribution wrapped over two lines, quote follows after a blank line
        ("Ok\n\nOn Mon, Mar 2, 2026 at 10:15 AM Acme <\nsupport@example.com> wrote:\n\n> x", "Ok"),
        # attribution without quoting below (HTML converted to text): cut
        ("Ok\n\nEm 02/03/2026 10:15, Acme escreveu:\nhistórico sem >", "Ok"),
        # an attribution-like sentence with no date is text
        (
            "Em resumo, o cliente escreveu:\nque não funciona",
            "Em resumo, o cliente escreveu:\nque não funciona",
        ),
        # Outlook header block variants
        ("Ok\n\nFrom: A <a@example.com>\nSent: Monday\nTo: B\nSubject: x\n\nold", "Ok"),
        ("Ok\n\n**De:** A\n**Data:** segunda\n**Para:** B\n**Assunto:** x\n\nold", "Ok"),
        ("Ok\n\nDe: A\nEnviado: segunda\nPara: B\nCc: C,\n  D\nAssunto: x\n\nold", "Ok"),
        # a single "De:" line is text, not a header block
        ("De: 10 a 20 de março\nPara: todos", "De: 10 a 20 de março\nPara: todos"),
        ("Ok\n-----Original Message-----\nold", "Ok"),
        ("Ok\n-----Mensagem original-----\nold", "Ok"),
        # signatures
        ("Ok\n-- \nJoão\nEmpresa", "Ok"),
        ("Ok\n\nSent from my iPhone", "Ok"),
        ("Ok\n\nEnviado do meu iPhone", "Ok"),
        ("Ok\n\nGet Outlook for Android", "Ok"),
        ("Ok\n\nObter o Outlook para iOS<https://aka.example.com/o0ukef>", "Ok"),
        # a sentence starting like a mobile signature but long is text
        (LONG_SENTENCE, LONG_SENTENCE),
        # indentation, lists and "Thanks," are kept
        (
            "Passos:\n- abrir\n- exportar\n\n    log: erro 42\n\nThanks, it still fails.",
            "Passos:\n- abrir\n- exportar\n\n    log: erro 42\n\nThanks, it still fails.",
        ),
        # CRLF and blank-line runs
        ("Oi\r\n\r\n\r\n\r\nTudo bem?\r\n> old\r\n", "Oi\n\nTudo bem?"),
        # issue 14: sentences that only look like markers are text
        (
            "Op maandag schreef ik het al:\nzie hieronder",
            "Op maandag schreef ik het al:\nzie hieronder",
        ),
        (
            "Send it to billing@example.com:\nthe invoice",
            "Send it to billing@example.com:\nthe invoice",
        ),
        ("2013/7/20 was the first invoice date.", "2013/7/20 was the first invoice date."),
        ("Ok\n\n----------\n\nthe rest", "Ok\n\n----------\n\nthe rest"),
        # verb before the name; address-only attributions before a quote
        ("Ok\n\nAm 03.02.2016 um 15:35 schrieb Max Muster:\n> alt", "Ok"),
        ("Ok\n\nDen 3. feb. 2016 kl. 15.35 skrev Ola <ola@example.no>:\n> gammel", "Ok"),
        ("Ok\n\nпн, 2 мар. 2026 г. в 10:15, Acme <s@example.com>:\n> old", "Ok"),
        ("Ok\n\n2013/7/20 Acme <s@example.com>\n\n> old", "Ok"),
        # header blocks in other languages, rule line left above them removed
        ("Ok\n\n-----\nFrån: A\nSkickat: den 2 mars\nTill: B\nÄmne: x\n\nold", "Ok"),
        ("Ok\n\nОт: A\nОтправлено: 2 марта\nКому: B\nТема: x\n\nold", "Ok"),
        ("Ok\n\n*-------- Original Message --------*\nold", "Ok"),
        ("Ok\n\nGesendet von meinem iPhone", "Ok"),
        # a forward inside the quote is history; outside it, content kept whole
        ("Ok\n> ---------- Forwarded message ---------\n> old", "Ok"),
        (
            "Veja:\n\nBegin forwarded message:\n\nFrom: A <a@example.org>\n\ntexto",
            "Veja:\n\nBegin forwarded message:\n\nFrom: A <a@example.org>\n\ntexto",
        ),
        # one quote answered below (bottom-posting) keeps no quote
        ("On Mon, 2 Mar 2026, A <a@example.org> wrote:\n> q\n\nanswer", "answer"),
    ],
)
def test_rules(text: str, expected: str) -> None:
    assert strip_reply(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   \n\n",
        "##- Responda acima desta linha -##\nnosso texto",
        "Em seg., 2 de mar. de 2026 às 10:15, Acme <s@example.com> escreveu:\n> x\n> y",
        "> only quoted\n> text",
        "-- \nJoão Silva",
        "Enviado do meu iPhone\n\n> Em 2 de mar. de 2026, Acme escreveu:\n> x",
    ],
)
def test_nothing_written_is_empty(text: str) -> None:
    assert strip_reply(text) == ""
