"""Tests for parsers.message: expected values per fixture, header decoding, hostile input."""

from __future__ import annotations

import ast
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from maild.parsers.headers import decode_header_value
from maild.parsers.html import html_to_text
from maild.parsers.message import parse_message
from maild.parsers.types import ParsedMessage

MAIL = Path(__file__).resolve().parents[2] / "fixtures" / "mail"
FixtureBytes = Callable[[str], bytes]

# name, subject, from_addr, from_name, message_id, text fragment, attachment names, broken
EXPECTED = [
    (
        "outlook-desktop-ptbr-qp-cp1252.eml",
        "Não consigo emitir NF-e (rejeição 539)",
        "mariana.souza@padariapao.example.com.br",
        "Mariana Souza",
        "CP5PR80MB4471A2E3B1C9F7D3E8B0E2D5A4F70@CP5PR80MB4471.lamprd80.prod.outlook.example.com",
        "“Rejeição 539 – duplicidade”",
        (),
        False,
    ),
    (
        "outlook-desktop-en-qp.eml",
        "RE: [#592114] Invoice export",
        "john.miller@contoso.example.com",
        "John Miller",
        "BN8PR12MB3346F0C1A2B3C4D5E6F7A8B9C0D1E@BN8PR12MB3346.namprd12.prod.outlook.example.com",
        "yesterday’s update the invoice export fails with “Error 0x80070005”",
        (),
        False,
    ),
    (
        "outlook-web-html-only-utf8.eml",
        "Boleto de março com valor errado",
        "carlos.pereira@outlook.example.com",
        "Carlos Pereira",
        "CPUP152MB5109E7B7C7C3E1A8E6A2F1B3B5B9A@CPUP152MB5109.LAMP152.PROD.OUTLOOK.example.com",
        "O boleto de março veio com o valor errado (R$ 1.250,00 em vez de R$ 950,00).\n"
        "Podem corrigir?",
        (),
        False,
    ),
    (
        "gmail-ptbr-alternative-base64.eml",
        "Aplicativo não abre após atualização",
        "joao.ribeiro.1987@gmail.com",
        "João Ribeiro",
        "CAF+3kZp7Q2mYbU9=x1rV0aHq4nT2w8cLkEJQ6xN5mB9oYz7sDg@mail.gmail.com",
        "Aparece só uma tela branca e depois fecha.",
        (),
        False,
    ),
    (
        "gmail-en-alternative-qp.eml",
        "Cannot reset my password",
        "emily.carter.design@gmail.com",
        "Emily Carter",
        "CAJ9vT+4n0R8xP6sLmQw2eYhK7u3bF1cZaGd5Ns0oV9pXr2tUiw@mail.gmail.com",
        "the e-mail never arrives. I checked the spam folder too — nothing there.",
        (),
        False,
    ),
    (
        "apple-mail-flowed-qp.eml",
        "Acesso ao painel bloqueado",
        "fernanda.lima@icloud.example.com",
        "Fernanda Lima",
        "7B9E1F4C-2D3A-4B5C-8E6F-1A2B3C4D5E6F@icloud.example.com",
        "depois de três tentativas de login erradas. Podem desbloquear o usuário fernanda.lima?",
        (),
        False,
    ),
    (
        "apple-mail-inline-image-split-text.eml",
        "Erro na tela de pagamento",
        "fernanda.lima@icloud.example.com",
        "Fernanda Lima",
        "0D4C3B2A-1F0E-4D9C-8B7A-6F5E4D3C2B1A@icloud.example.com",
        "Segue o print do erro:\n\nAcontece sempre que escolho cartão de crédito.",
        ("Captura de Tela 2025-03-07.png",),
        False,
    ),
    (
        "apple-mail-nfd-filename-rfc2231.eml",
        "Relatório mensal",
        "fernanda.lima@icloud.example.com",
        "Fernanda Lima",
        "5D4C3B2A-0E1F-4A3B-9C8D-7E6F5A4B3C2D@icloud.example.com",
        "Segue o relatorio em anexo.",
        ("relato\u0301rio mensal.pdf",),
        False,
    ),
    (
        "thunderbird-flowed-8bit.eml",
        "Integração com o ERP parou",
        "rafael.andrade@construtora.example.com.br",
        "Rafael Andrade",
        "8c1d2e3f-4a5b-6c7d-8e9f-0a1b2c3d4e5f@example.com.br",
        'O log mostra "timeout ao conectar em api.example.com" em todas as tentativas.\n\n-- \n',
        (),
        False,
    ),
    (
        "iphone-enviado-do-meu-iphone.eml",
        "Não recebi o código de verificação",
        "luciana.alves@gmail.com",
        "Luciana Alves",
        "A1B2C3D4-E5F6-4789-ABCD-EF0123456789@gmail.com",
        "Já pedi 4 vezes.\n\nEnviado do meu iPhone",
        (),
        False,
    ),
    (
        "android-samsung-email-ptbr.eml",
        "Pedido atrasado",
        "paulo.menezes@hotmail.example.com",
        "Paulo Menezes",
        "wdzk3l0q8b9x4m1r2s7t6u5v.1741790000123@email.android.com",
        "Enviado do meu Galaxy",
        (),
        False,
    ),
    (
        "iso-8859-1-q-subject-8bit-body.eml",
        "Erro de cálculo no ICMS da nota fiscal",
        "andre.conceicao@contabil.example.com.br",
        "André Conceição",
        "20250312140500.12345@contabil.example.com.br",
        "alíquota 18% aplicada em operação isenta",
        (),
        False,
    ),
    (
        "iso-8859-1-b-subject-qp-body.eml",
        "Solicitação de acesso para nova funcionária",
        "ana.falcao@escola.example.com.br",
        "Ana Beatriz Falcão",
        "b-subject-0001@escola.example.com.br",
        "Lúcia Araújo, ao módulo de matrículas",
        (),
        False,
    ),
    (
        "windows-1252-labelled-iso-8859-1.eml",
        "Fatura em euro",
        "beatriz.nogueira@importadora.example.com.br",
        "Beatriz Nogueira",
        "cp1252-as-latin1-01@importadora.example.com.br",
        "“€ 1.200,00” – mas",
        (),
        False,
    ),
    (
        "utf8-mislabelled-as-iso-8859-1.eml",
        "Cobrança duplicada",
        "ricardo.tavares@gmail.com",
        "Ricardo Tavares",
        "utf8-as-latin1-01@gmail.com",
        "no cartão: não reconheço",
        (),
        True,
    ),
    (
        "bad-charset-label.eml",
        "Relatório não gera",
        "tiago.moreira@example.com.br",
        "Tiago Moreira",
        "bad-charset-01@example.com.br",
        "O relatório de vendas não gera desde março.",
        (),
        True,
    ),
    (
        "utf8-nondecodable.eml",
        "Erro ao salvar cadastro",
        "helena.prado@example.com.br",
        "Helena Prado",
        "utf8-bad-bytes-01@example.com.br",
        'aparece "operação inválida"',
        (),
        True,
    ),
    (
        "headers-raw-8bit-utf8.eml",
        "Dúvida sobre o plano anual – renovação",
        "claudia.vieira@example.com.br",
        "Cláudia Vieira",
        "raw-8bit-headers-01@example.com.br",
        "O plano anual renova automaticamente?",
        (),
        True,
    ),
    (
        "headers-raw-8bit-latin1.eml",
        "Solicitação de orçamento",
        "jorge.batista@example.com.br",
        "Jorge Batista",
        "raw-8bit-latin1-01@example.com.br",
        "orçamento para 20 licenças",
        (),
        True,
    ),
    (
        "broken-mime-missing-end-boundary.eml",
        "Contrato assinado",
        "vanessa.rocha@example.com.br",
        "Vanessa Rocha",
        "missing-end-boundary-01@example.com.br",
        "Segue o contrato assinado.",
        ("contrato.pdf",),
        True,
    ),
    (
        "broken-mime-no-boundary-param.eml",
        "Sem boundary",
        "otavio.nunes@example.com.br",
        "Otavio Nunes",
        "no-boundary-01@example.com.br",
        "O sistema de ponto eletronico esta fora do ar.",
        (),
        True,
    ),
    (
        "broken-base64-padding.eml",
        "Foto do equipamento",
        "sergio.lopes@example.com.br",
        "Sergio Lopes",
        "bad-base64-01@example.com.br",
        "Segue a foto do equipamento com defeito.",
        ("equipamento.jpg",),
        True,
    ),
    (
        "no-message-id.eml",
        "Alarme: servidor de arquivos sem espaco",
        "alarmes@fabrica.example.com.br",
        "Sistema de Alarmes",
        None,
        "Volume /dados com 98% de uso.",
        (),
        True,
    ),
    (
        "no-from.eml",
        "Relatorio diario",
        "",
        "",
        "no-from-01@legacy.example.com",
        "Relatorio diario sem remetente.",
        (),
        True,
    ),
    ("empty.eml", "", "", "", None, "", (), True),
    (
        "nested-rfc822-10-levels.eml",
        "Fwd: nivel 1",
        "nivel1@example.com",
        "Nivel Um",
        "nested-1@example.com",
        "Encaminhando (nivel 1).",
        ("Fwd nivel 2.eml",),
        False,
    ),
    (
        "attachments-png-jpeg-gif-pdf.eml",
        "Prints e boleto",
        "marcos.teixeira@example.com.br",
        "Marcos Teixeira",
        "four-attachments-01@example.com.br",
        "Seguem os prints e o boleto.",
        ("tela1.png", "foto.JPEG", "animacao.gif", "boleto.pdf"),
        False,
    ),
    (
        "attachment-png-that-is-exe.eml",
        "Comprovante",
        "promo@ofertas.example.com",
        "Desconhecido",
        "png-is-exe-01@ofertas.example.com",
        "Segue comprovante.",
        ("comprovante.png",),
        False,
    ),
    (
        "attachment-double-extension-exe.eml",
        "Fatura em aberto",
        "cobranca@boletos.example.com",
        "Cobranca",
        "double-ext-01@boletos.example.com",
        "Sua fatura está em anexo.",
        ("fatura.pdf.exe",),
        False,
    ),
    (
        "attachment-path-traversal-filename.eml",
        "Arquivos",
        "pentest@example.com",
        "Teste Seguranca",
        "path-traversal-01@example.com",
        "Arquivos em anexo.",
        ("../../etc/passwd", "C:\\temp\\nota.pdf"),
        False,
    ),
    (
        "attachment-no-extension-scanner.eml",
        "Documento digitalizado",
        "scanner@escritorio.example.com.br",
        "Scanner MFP",
        "scanner-01@escritorio.example.com.br",
        "Documento digitalizado em anexo.",
        ("Scan_0001",),
        False,
    ),
    (
        "inline-cid-image-outlook.eml",
        "Etiqueta sem logotipo",
        "priscila.duarte@logistica.example.com.br",
        "Priscila Duarte",
        "inline-cid-01@logistica.example.com.br",
        "A etiqueta sai sem o logotipo, veja abaixo.",
        ("image001.png",),
        False,
    ),
    (
        "inline-cid-image-no-filename.eml",
        "Print da mensagem de erro",
        "gustavo.ramos@gmail.com",
        "Gustavo Ramos",
        "inline-cid-02@gmail.com",
        "Olha o erro:",
        ("",),
        False,
    ),
    (
        "winmail-dat-tnef.eml",
        "Pedido de compra 7781",
        "roberto.farias@industria.example.com.br",
        "Roberto Farias",
        "tnef-01@industria.example.com.br",
        "Segue o pedido de compra em anexo.",
        ("pedido-7781.pdf", "assinatura.png"),
        False,
    ),
    (
        "winmail-dat-only-body.eml",
        "Nota fiscal 1203",
        "roberto.farias@industria.example.com.br",
        "Roberto Farias",
        "tnef-02@industria.example.com.br",
        "Anexo a nota fiscal 1203 para conferência.",
        ("nf-1203.pdf",),
        False,
    ),
    (
        "auto-reply-out-of-office.eml",
        "Resposta automática: [#592110] Não consigo emitir NF-e",
        "mariana.souza@padariapao.example.com.br",
        "Mariana Souza",
        "oof-01@padariapao.example.com.br",
        "Estou de férias até 31/03. Em caso de urgência",
        (),
        False,
    ),
    (
        "list-mail-list-id.eml",
        "[Clientes] Manutencao programada no sabado",
        "boletim@lists.example.org",
        "Boletim Fornecedores",
        "list-post-01@lists.example.org",
        "Havera manutencao programada",
        (),
        False,
    ),
    (
        "dsn-bounce-postfix.eml",
        "Undelivered Mail Returned to Sender",
        "mailer-daemon@mx.example.com",
        "Mail Delivery System",
        "20250321130003.7C3B12C0A2@mx.example.com",
        "your message could not\nbe delivered",
        (),
        False,
    ),
    (
        "dsn-bounce-exchange-rfc822-headers.eml",
        "Undeliverable: [#592110] Recebemos seu chamado",
        "postmaster@outlook.example.com",
        "",
        "ndr-5f1e2d3c@outlook.example.com",
        "Delivery has failed to these recipients or groups:",
        (),
        False,
    ),
    (
        "subject-token-res-ptbr.eml",
        "RES: [#592110] Não consigo emitir NF-e",
        "mariana.souza@padariapao.example.com.br",
        "Mariana Souza",
        "CP5PR80MB44710003@CP5PR80MB4471.lamprd80.prod.outlook.example.com",
        "Funcionou, obrigada!",
        (),
        False,
    ),
    (
        "subject-token-prefixed-ack.eml",
        "Re: Fwd: [ACME #000123] Troca de senha",
        "lucas.martins@example.com.br",
        "Lucas Martins",
        "ack-prefix-01@example.com.br",
        "Consegui trocar, podem fechar.",
        (),
        False,
    ),
    (
        "high-importance.eml",
        "URGENTE: sistema fora do ar",
        "diretoria@cliente.example.com.br",
        "Diretoria",
        "urgent-01@cliente.example.com.br",
        "Ninguem consegue acessar o sistema desde as 7h.",
        (),
        False,
    ),
    (
        "recipients-delivered-to-encoded-names.eml",
        "Proposta comercial",
        "eduardo.santos@example.com.br",
        "Santos, Eduardo",
        "recipients-01@example.com.br",
        "Gostaria de receber uma proposta para 50 usuários.",
        (),
        False,
    ),
    (
        "encoded-word-split-multibyte.eml",
        "Atenção: integração não sincroniza pedidos",
        "igor.campos@example.com.br",
        "Igor Campos",
        "split-word-01@example.com.br",
        "Os pedidos de ontem não aparecem no ERP.",
        (),
        False,
    ),
    (
        "smime-signed.eml",
        "Alteracao de dados bancarios",
        "renata.dias@banco.example.com.br",
        "Renata Dias",
        "smime-01@banco.example.com.br",
        "Favor alterar a conta de pagamento para a agencia 0001.",
        (),
        False,
    ),
    (
        "rfc2047-filename-outlook.eml",
        "Comprovante de pagamento",
        "sabrina.melo@example.com.br",
        "Sabrina Melo",
        "rfc2047-filename-01@example.com.br",
        "Segue o comprovante.",
        ("comprovante-março.pdf",),
        False,
    ),
    (
        "html-only-with-blockquote.eml",
        "Re: [#592130] Exportar planilha",
        "eduarda.pires@example.com.br",
        "Eduarda Pires",
        "html-only-02@example.com.br",
        "Deu certo, obrigada! 😊\nValor: R$ 10,00 & frete grátis.",
        (),
        False,
    ),
    (
        "crlf-8bit-nul-bytes.eml",
        "Leitura do coletor",
        "gateway@legacy.example.com",
        "Gateway",
        "nul-bytes-01@legacy.example.com",
        "Leitura do coletor 42\nfalhou.",
        (),
        False,
    ),
    (
        "date-invalid-and-folded-headers.eml",
        "Problema recorrente ao gerar o arquivo de remessa bancaria do mes de marco para o banco",
        "wagner.costa@example.com.br",
        "Wagner Costa",
        "bad-date-01@example.com.br",
        "O arquivo de remessa sai vazio.",
        (),
        True,
    ),
]


@pytest.mark.parametrize(
    ("name", "subject", "from_addr", "from_name", "message_id", "text", "files", "broken"),
    EXPECTED,
    ids=[row[0] for row in EXPECTED],
)
def test_fixture_expected_values(
    fixture_bytes: FixtureBytes,
    name: str,
    subject: str,
    from_addr: str,
    from_name: str,
    message_id: str | None,
    text: str,
    files: tuple[str, ...],
    broken: bool,
) -> None:
    raw = fixture_bytes(name)
    msg = parse_message(raw)
    assert msg.subject == subject
    assert msg.from_addr == from_addr
    assert msg.from_name == from_name
    assert msg.message_id == message_id
    assert text in msg.text
    assert tuple(a.filename for a in msg.attachments) == files
    assert bool(msg.defects) is broken, msg.defects
    assert msg.size == len(raw)


def test_every_own_fixture_has_an_expectation() -> None:
    own = {
        p.name
        for p in MAIL.glob("*.eml")
        if not p.name.startswith(("reply-", "forward-", "auto-", "bounce-"))
    }
    assert own <= {row[0] for row in EXPECTED}


def test_recipients_and_trace_headers(fixture_bytes: FixtureBytes) -> None:
    msg = parse_message(fixture_bytes("recipients-delivered-to-encoded-names.eml"))
    assert msg.to == ("comercial@example.com", "vendas@example.com")
    assert msg.cc == ("barbara.costa@example.com.br",)
    assert msg.reply_to == ("compras@example.com.br",)
    assert msg.delivered_to == ("comercial@example.com",)
    assert msg.x_original_to == ("comercial@example.com",)
    assert msg.return_path == "eduardo.santos@example.com.br"
    assert msg.header("CC") is not None
    assert "Bárbara Costa" in (msg.header("cc") or "")


def test_return_path_absent_is_none_and_null_sender_is_empty(fixture_bytes: FixtureBytes) -> None:
    assert parse_message(fixture_bytes("high-importance.eml")).return_path is None
    assert parse_message(fixture_bytes("dsn-bounce-postfix.eml")).return_path == ""


def test_reply_ids_are_split_without_brackets(fixture_bytes: FixtureBytes) -> None:
    msg = parse_message(fixture_bytes("subject-token-res-ptbr.eml"))
    assert msg.in_reply_to == ("maild-592110-2@example.com",)
    assert msg.references == ("maild-592110-1@example.com", "maild-592110-2@example.com")


def test_headers_map_is_lowercased_decoded_and_keeps_every_value(
    fixture_bytes: FixtureBytes,
) -> None:
    msg = parse_message(fixture_bytes("high-importance.eml"))
    assert msg.headers["importance"] == ("high",)
    assert msg.header("X-Priority") == "1 (Highest)"
    assert msg.header("Priority") == "urgent"
    oof = parse_message(fixture_bytes("auto-reply-out-of-office.eml"))
    assert oof.header("auto-submitted") == "auto-replied"
    assert oof.header("x-auto-response-suppress") == "All"
    listed = parse_message(fixture_bytes("list-mail-list-id.eml"))
    assert listed.header("list-id") == "Clientes <clientes.lists.example.org>"
    assert listed.header("precedence") == "list"
    outlook = parse_message(fixture_bytes("outlook-desktop-ptbr-qp-cp1252.eml"))
    assert outlook.headers["thread-topic"] == ("Não consigo emitir NF-e (rejeição 539)",)
    assert len(outlook.headers["received"]) == 1


def test_dates_are_timezone_aware(fixture_bytes: FixtureBytes) -> None:
    msg = parse_message(fixture_bytes("gmail-ptbr-alternative-base64.eml"))
    assert msg.date == datetime(2025, 3, 6, 12, 3, 9, tzinfo=timezone(timedelta(hours=-3)))
    assert parse_message(b"Date: Tue, 4 Mar 2025 12:00:00 -0000\n\nx").date == datetime(
        2025, 3, 4, 12, tzinfo=UTC
    )
    assert parse_message(fixture_bytes("date-invalid-and-folded-headers.eml")).date is None


def test_html_only_mail_is_converted_and_html_kept(fixture_bytes: FixtureBytes) -> None:
    msg = parse_message(fixture_bytes("outlook-web-html-only-utf8.eml"))
    assert msg.html is not None and "<div" in msg.html
    assert "<" not in msg.text
    assert msg.text.startswith("Olá, boa tarde!")
    assert "Pereira & Filhos Comércio" in msg.text


def test_plain_part_wins_over_html(fixture_bytes: FixtureBytes) -> None:
    msg = parse_message(fixture_bytes("gmail-en-alternative-qp.eml"))
    assert msg.html is not None and "<div" in msg.html
    assert msg.text.startswith("Hello,\n\nI requested")


def test_inline_cid_images_are_attachments(fixture_bytes: FixtureBytes) -> None:
    (image,) = parse_message(fixture_bytes("inline-cid-image-outlook.eml")).attachments
    assert image.inline
    assert image.content_id == "image001.png@01DB98A1.5C2E3F40"
    assert image.content_type == "image/png"
    assert image.payload.startswith(b"\x89PNG")
    (nameless,) = parse_message(fixture_bytes("inline-cid-image-no-filename.eml")).attachments
    assert (nameless.filename, nameless.content_type, nameless.inline) == ("", "image/jpeg", True)


def test_attachment_payloads_are_decoded(fixture_bytes: FixtureBytes) -> None:
    msg = parse_message(fixture_bytes("attachments-png-jpeg-gif-pdf.eml"))
    heads = [(a.content_type, a.payload[:4]) for a in msg.attachments]
    assert heads == [
        ("image/png", b"\x89PNG"),
        ("image/jpeg", b"\xff\xd8\xff\xe0"),
        ("image/gif", b"GIF8"),
        ("application/pdf", b"%PDF"),
    ]
    assert not any(a.inline for a in msg.attachments)


def test_tnef_files_are_unpacked(fixture_bytes: FixtureBytes) -> None:
    msg = parse_message(fixture_bytes("winmail-dat-tnef.eml"))
    pdf, png = msg.attachments
    assert (pdf.content_type, pdf.payload[:5]) == ("application/pdf", b"%PDF-")
    assert (png.content_type, png.payload[:4]) == ("image/png", b"\x89PNG")
    assert "winmail.dat" not in {a.filename for a in msg.attachments}


def test_broken_tnef_is_kept_as_a_file_with_a_defect() -> None:
    raw = (
        b"From: a@example.com\nMessage-ID: <t@example.com>\nMIME-Version: 1.0\n"
        b'Content-Type: multipart/mixed; boundary="b"\n\n--b\nContent-Type: text/plain\n\nhi\n'
        b"--b\nContent-Type: application/ms-tnef\nContent-Disposition: attachment; "
        b'filename="winmail.dat"\n\nnot tnef at all\n--b--\n'
    )
    msg = parse_message(raw)
    assert [a.filename for a in msg.attachments] == ["winmail.dat"]
    assert any("TNEF" in d for d in msg.defects)


def test_attached_messages_are_not_exploded(fixture_bytes: FixtureBytes) -> None:
    raw = fixture_bytes("nested-rfc822-10-levels.eml")
    assert raw.count(b"Content-Type: message/rfc822") == 9
    msg = parse_message(raw)
    # the outer attached message is one .eml file (listed, never dropped), not exploded
    assert [(a.filename, a.content_type) for a in msg.attachments] == [
        ("Fwd nivel 2.eml", "message/rfc822")
    ]
    assert b"mais interna" in msg.attachments[0].payload
    assert "mais interna" not in msg.text
    dsn = parse_message(fixture_bytes("dsn-bounce-postfix.eml"))
    assert "Recebemos seu chamado" not in dsn.text
    assert dsn.attachments == ()


def test_signature_parts_are_not_attachments(fixture_bytes: FixtureBytes) -> None:
    assert parse_message(fixture_bytes("smime-signed.eml")).attachments == ()


def test_mislabelled_charsets_are_noted(fixture_bytes: FixtureBytes) -> None:
    (note,) = parse_message(fixture_bytes("utf8-mislabelled-as-iso-8859-1.eml")).defects
    assert "UTF-8" in note
    (note,) = parse_message(fixture_bytes("bad-charset-label.eml")).defects
    assert "x-bogus-8859" in note


def test_missing_closing_boundary_is_a_defect(fixture_bytes: FixtureBytes) -> None:
    msg = parse_message(fixture_bytes("broken-mime-missing-end-boundary.eml"))
    assert any("CloseBoundaryNotFound" in d for d in msg.defects)


def test_nul_bytes_never_reach_the_text(fixture_bytes: FixtureBytes) -> None:
    msg = parse_message(fixture_bytes("crlf-8bit-nul-bytes.eml"))
    assert "\x00" not in msg.text


def test_empty_input() -> None:
    msg = parse_message(b"")
    assert msg == ParsedMessage(
        message_id=None,
        subject="",
        from_addr="",
        from_name="",
        defects=msg.defects,
        headers={},
    )
    assert "empty message" in msg.defects


def test_five_thousand_line_header_block() -> None:
    filler = b"".join(b"X-Trace-%d: hop %d via relay.example.com\n" % (i, i) for i in range(5000))
    raw = (
        b"From: Ana <ana@example.com>\nSubject: cabe\xc3\xa7alho enorme\nMessage-ID: <big@x>\n"
        + filler
        + b"References: "
        + b"\n ".join(b"<r%d@example.com>" % i for i in range(5000))
        + b"\n\ncorpo\n"
    )
    msg = parse_message(raw)
    assert msg.subject == "cabeçalho enorme"
    assert msg.text == "corpo"
    assert len(msg.references) == 5000
    assert msg.header("x-trace-4999") == "hop 4999 via relay.example.com"


@pytest.mark.parametrize("container", ["multipart", "rfc822"])
def test_hostile_nesting_does_not_raise(container: str) -> None:
    body = b"Content-Type: text/plain\n\ninner\n"
    for level in range(1500):
        if container == "multipart":
            body = b"Content-Type: multipart/mixed; boundary=b%d\n\n--b%d\n%s\n--b%d--\n" % (
                level,
                level,
                body,
                level,
            )
        else:
            body = b"Content-Type: message/rfc822\n\n" + body
    msg = parse_message(b"From: a@example.com\nSubject: deep\n" + body)
    assert msg.subject == "deep"
    assert msg.from_addr == "a@example.com"
    assert msg.defects


def test_str_input_is_tolerated() -> None:
    msg = parse_message("Subject: texto\n\ncorpo")  # type: ignore[arg-type]
    assert (msg.subject, msg.text) == ("texto", "corpo")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("=?iso-8859-1?Q?N=E3o_consigo?=", "Não consigo"),
        ("=?UTF-8?B?w6fDo28=?=", "ção"),
        ("=?utf-8?q?a?= =?utf-8?q?b?=", "ab"),  # whitespace between encoded words is dropped
        ("RES: =?utf-8?Q?N=C3=A3o?= funciona", "RES: Não funciona"),
        ("=?windows-1252?Q?=93aspas=94?=", "“aspas”"),
        ("=?x-unknown?Q?caf=E9?=", "café"),
        ("=?utf-8?B?not base64!?=", "=?utf-8?B?not base64!?="),
        ("linha\r\n dobrada", "linha dobrada"),
        ("=?utf-8*pt-br?Q?ol=C3=A1?=", "olá"),
        ("sem codificação", "sem codificação"),
        ("nul\x00byte", "nulbyte"),
    ],
)
def test_decode_header_value(raw: str, expected: str) -> None:
    assert decode_header_value(raw) == expected


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        ("<p>Olá <b>mundo</b></p>", "Olá mundo"),
        ("<div>1. item</div><div>- traço</div>", "1. item\n- traço"),
        ('<p><img src="cid:x" alt="foto">texto</p>', "texto"),
        ('<a href="https://example.com/x">clique aqui</a>', "clique aqui"),
        ("<table><tr><td>a</td><td>b</td></tr></table>", "a b"),
        ("<h1>Título</h1><p>C:\\pasta\\*</p>", "Título\nC:\\pasta\\*"),
        ("", ""),
    ],
)
def test_html_to_text(html: str, expected: str) -> None:
    assert html_to_text(html) == expected


@settings(max_examples=300, deadline=None, database=None)
@given(st.binary(max_size=4096))
def test_never_raises_on_arbitrary_bytes(raw: bytes) -> None:
    msg = parse_message(raw)
    assert isinstance(msg, ParsedMessage)
    assert msg.size == len(raw)


_SEEDS = sorted(p.name for p in MAIL.glob("*.eml") if p.stat().st_size)


@settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    name=st.sampled_from(_SEEDS),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
    edits=st.integers(min_value=1, max_value=40),
)
def test_never_raises_on_mutated_fixtures(
    fixture_bytes: FixtureBytes, name: str, seed: int, edits: int
) -> None:
    rng = random.Random(seed)
    data = bytearray(fixture_bytes(name))
    for _ in range(edits):
        op = rng.randrange(4)
        pos = rng.randrange(len(data) + 1)
        if op == 0 and data:
            data[min(pos, len(data) - 1)] = rng.randrange(256)
        elif op == 1:
            data[pos:pos] = rng.choice([b"\n", b"=?", b"?=", b"--", b":", b"\x00", b"\xff", b"<"])
        elif op == 2:
            del data[pos : pos + rng.randrange(1, 64)]
        else:
            data[pos:pos] = data[rng.randrange(len(data) or 1) :][: rng.randrange(1, 200)]
    msg = parse_message(bytes(data))
    assert msg.size == len(data)


def test_parsers_stay_pure() -> None:
    forbidden = ("storage", "maild", "structlog", "socket", "imaplib", "smtplib", "time")
    # parsers are installed as maild.parsers: they may import each other, nothing else of maild
    root = Path(__file__).resolve().parents[3] / "parsers"
    for module in ("message.py", "attachments.py", "html.py"):
        tree = ast.parse((root / module).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                if name.startswith("maild.parsers"):
                    continue
                assert name.split(".")[0] not in forbidden, (module, name)
        assert "datetime.now" not in (root / module).read_text(encoding="utf-8")


# --- large messages: base64 bodies decoded outside the stdlib parser -------------------


def _big_message(body_b64: bytes) -> bytes:
    return (
        b"From: Cliente <cliente@example.com.br>\r\nTo: suporte@example.com\r\n"
        b"Subject: Fotos\r\nMessage-ID: <big-1@example.com.br>\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
        b"--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSeguem as fotos.\r\n"
        b'--b1\r\nContent-Type: image/png; name="foto.png"\r\n'
        b'Content-Disposition: attachment; filename="foto.png"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\n" + body_b64 + b"--b1--\r\n"
    )


def test_large_base64_attachment_decodes_like_the_stdlib() -> None:
    import base64
    import email as stdlib_email

    data = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8000  # ~2 MB
    raw = _big_message(base64.encodebytes(data).replace(b"\n", b"\r\n"))
    assert len(raw) > (1 << 20)

    parsed = parse_message(raw)

    (attachment,) = parsed.attachments
    assert attachment.filename == "foto.png"
    assert attachment.payload == data
    expected = [
        p.get_payload(decode=True)
        for p in stdlib_email.message_from_bytes(raw).walk()
        if p.get_filename()
    ]
    assert expected == [data]
    assert "Seguem as fotos." in parsed.text


def test_large_body_that_is_not_valid_base64_is_left_to_the_parser() -> None:
    junk = (b"!!!! not base64 at all ****\r\n") * 50000  # > 1 MB
    parsed = parse_message(_big_message(junk))
    assert parsed.subject == "Fotos"
    assert "Seguem as fotos." in parsed.text


@pytest.mark.parametrize(
    ("description", "expected"),
    [("fatura-0311.pdf", "fatura-0311.pdf"), ("Scanned document v1.2", ""), ("Card for Ana", "")],
)
def test_content_description_names_a_file_only_when_it_is_a_file_name(
    description: str, expected: str
) -> None:
    raw = (
        b"From: a@example.com\nMessage-ID: <d@example.com>\nMIME-Version: 1.0\n"
        b'Content-Type: multipart/mixed; boundary="b"\n\n--b\nContent-Type: text/plain\n\nhi\n'
        b"--b\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n"
        b"Content-Description: " + description.encode() + b"\n\nJVBERi0xLjMK\n--b--\n"
    )
    msg = parse_message(raw)
    assert [a.filename for a in msg.attachments] == [expected]  # listed either way


def test_uuencoded_file_leaves_the_text() -> None:
    raw = (
        b"From: a@example.com\nMessage-ID: <u@example.com>\n\nSee file.\n\n"
        b"begin 644 a.txt\n&:&5L;&\\*\n`\nend\n\nBye\n"
    )
    msg = parse_message(raw)
    assert [(a.filename, a.payload) for a in msg.attachments] == [("a.txt", b"hello\n")]
    assert "begin 644" not in msg.text and "See file." in msg.text and "Bye" in msg.text
